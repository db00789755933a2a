"""Tests of the LibriMix and WHAM!/WHAMR! CSV preparations."""

import csv
import os

import pytest
from gmsep.data.audio import DataError

from recipes import prepare_librimix as librimix_module
from recipes.prepare_librimix import main, prepare_librimix
from recipes.prepare_wham import prepare_wham

ALL_SPLITS = ("train-360", "train-100", "dev", "test")


def read_csv(path):
    with open(path, newline="") as csv_file:
        rows = list(csv.reader(csv_file))
    return rows[0], rows[1:]


def snapshot(folder):
    """Bytes and mtimes of every file below folder."""
    return {
        path: (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# every value of each setting, and every pair of speaker count and rate
@pytest.mark.parametrize(
    "n_spks, sample_rate, mode, condition",
    [
        (2, 8000, "min", "noisy"),
        (3, 8000, "max", "clean"),
        (2, 16000, "max", "clean"),
        (3, 16000, "min", "noisy"),
    ],
)
def test_librimix_csvs(
    tmp_path, make_librimix_tree, n_spks, sample_rate, mode, condition
):
    tree = make_librimix_tree(
        tmp_path / "data", n_spks, sample_rate, mode, ALL_SPLITS, n_mixtures=3
    )
    csv_paths = prepare_librimix(
        tmp_path / "data",
        tmp_path / "csv",
        n_spks=n_spks,
        sample_rate=sample_rate,
        mode=mode,
        condition=condition,
        splits=ALL_SPLITS,
    )
    sources = [f"s{i}_wav" for i in range(1, n_spks + 1)]
    expected_header = [
        "ID",
        "duration",
        "mix_wav",
        *sources,
        "noise_wav",
        "clean_wav",
    ]
    split_root = (
        tmp_path / "data" / f"Libri{n_spks}Mix" / f"wav{sample_rate // 1000}k"
    )
    mix = "mix_both" if condition == "noisy" else "mix_clean"
    for split in ALL_SPLITS:
        assert csv_paths[split] == str(
            tmp_path / "csv" / f"libri{n_spks}mix_{split}.csv"
        )
        header, rows = read_csv(csv_paths[split])
        assert header == expected_header
        assert [row[0] for row in rows] == sorted(tree[split])
        for row in rows:
            record = dict(zip(header, row, strict=True))
            assert (
                float(record["duration"]) == tree[split][row[0]] / sample_rate
            )
            folder = split_root / mode / split
            assert record["mix_wav"] == str(folder / mix / f"{row[0]}.wav")
            assert record["clean_wav"] == str(
                folder / "mix_clean" / f"{row[0]}.wav"
            )
            assert record["noise_wav"] == str(
                folder / "noise" / f"{row[0]}.wav"
            )
            for i, column in enumerate(sources, start=1):
                assert record[column] == str(folder / f"s{i}" / f"{row[0]}.wav")
            assert all(os.path.isabs(record[c]) for c in header[2:])
            assert all(os.path.isfile(record[c]) for c in header[2:])


def test_librimix_folder_itself_is_accepted(tmp_path, make_librimix_tree):
    make_librimix_tree(tmp_path, splits=("dev",))
    from_root = prepare_librimix(tmp_path, tmp_path / "a", splits=["dev"])
    from_folder = prepare_librimix(
        tmp_path / "Libri2Mix", tmp_path / "b", splits="dev"
    )
    assert read_csv(from_root["dev"]) == read_csv(from_folder["dev"])


@pytest.mark.parametrize(
    "version, folders",
    [
        ("wham", ["mix_both", "s1", "s2", "noise", "mix_clean"]),
        (
            "whamr",
            [
                "mix_both_reverb",
                "s1_anechoic",
                "s2_anechoic",
                "noise",
                "mix_clean_anechoic",
            ],
        ),
    ],
)
@pytest.mark.parametrize("sample_rate", [8000, 16000])
def test_wham_csvs(tmp_path, make_wham_tree, version, folders, sample_rate):
    tree = make_wham_tree(
        tmp_path, version, sample_rate, "max", ("tr", "cv", "tt"), n_mixtures=3
    )
    csv_paths = prepare_wham(
        tmp_path,
        tmp_path / "csv",
        version=version,
        sample_rate=sample_rate,
        mode="max",
    )
    assert sorted(csv_paths) == ["cv", "tr", "tt"]
    for split, csv_path in csv_paths.items():
        assert csv_path == str(tmp_path / "csv" / f"{version}_{split}.csv")
        header, rows = read_csv(csv_path)
        assert header == [
            "ID",
            "duration",
            "mix_wav",
            "s1_wav",
            "s2_wav",
            "noise_wav",
            "clean_wav",
        ]
        assert [row[0] for row in rows] == sorted(tree[split])
        split_folder = tmp_path / f"wav{sample_rate // 1000}k" / "max" / split
        for row in rows:
            assert float(row[1]) == tree[split][row[0]] / sample_rate
            assert row[2:] == [
                str(split_folder / folder / f"{row[0]}.wav")
                for folder in folders
            ]


def test_second_call_does_not_rewrite(tmp_path, make_librimix_tree):
    make_librimix_tree(tmp_path, splits=("dev", "test"))
    csv_paths = prepare_librimix(
        tmp_path, tmp_path / "csv", splits=("dev", "test")
    )
    before = snapshot(tmp_path / "csv")
    assert prepare_librimix(
        tmp_path, tmp_path / "csv", splits=("dev", "test")
    ) == (csv_paths)
    assert snapshot(tmp_path / "csv") == before


def test_stale_csv_is_rewritten(tmp_path, make_librimix_tree):
    make_librimix_tree(tmp_path)
    csv_path = prepare_librimix(tmp_path, tmp_path / "csv", splits=["dev"])[
        "dev"
    ]
    prepare_librimix(
        tmp_path, tmp_path / "csv", splits=["dev"], condition="clean"
    )
    _, rows = read_csv(csv_path)
    assert all("/mix_clean/" in row[2] for row in rows)


def test_grown_corpus_is_rewritten(tmp_path, make_librimix_tree):
    make_librimix_tree(tmp_path, n_mixtures=1)
    csv_path = prepare_librimix(tmp_path, tmp_path / "csv", splits=["dev"])[
        "dev"
    ]
    make_librimix_tree(tmp_path, n_mixtures=2)
    prepare_librimix(tmp_path, tmp_path / "csv", splits=["dev"])
    assert len(read_csv(csv_path)[1]) == 2


def test_audio_is_never_touched(tmp_path, make_librimix_tree, make_wham_tree):
    make_librimix_tree(tmp_path / "librimix", splits=("dev", "test"))
    make_wham_tree(tmp_path / "whamr", "whamr")
    before = snapshot(tmp_path)
    prepare_librimix(
        tmp_path / "librimix", tmp_path / "csv", splits=("dev", "test")
    )
    prepare_wham(
        tmp_path / "whamr", tmp_path / "csv", version="whamr", splits="tt"
    )
    after = snapshot(tmp_path)
    assert {path: after[path] for path in before} == before
    assert sorted(set(after) - set(before)) == sorted(
        (tmp_path / "csv").iterdir()
    )


def test_foreign_csv_is_not_clobbered(tmp_path, make_librimix_tree):
    make_librimix_tree(tmp_path)
    user_csv = tmp_path / "csv" / "libri2mix_dev.csv"
    user_csv.parent.mkdir()
    user_csv.write_text("ID,duration,mix_wav,mix_wav_format\nx,1.0,a.wav,wav\n")
    with pytest.raises(DataError, match="libri2mix_dev.csv exists and is not"):
        prepare_librimix(tmp_path, tmp_path / "csv", splits=["dev"])
    assert user_csv.read_text().startswith(
        "ID,duration,mix_wav,mix_wav_format\n"
    )


def test_interrupted_write_leaves_no_partial_csv(
    tmp_path, make_librimix_tree, monkeypatch
):
    make_librimix_tree(tmp_path)
    csv_path = tmp_path / "csv" / "libri2mix_dev.csv"

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(librimix_module.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_librimix(tmp_path, tmp_path / "csv", splits=["dev"])
    assert list((tmp_path / "csv").iterdir()) == []
    monkeypatch.undo()
    prepare_librimix(tmp_path, tmp_path / "csv", splits=["dev"])
    assert len(read_csv(csv_path)[1]) == 2


def test_missing_data_folder(tmp_path):
    with pytest.raises(
        DataError, match="does-not-exist does not exist"
    ) as error:
        prepare_librimix(tmp_path / "does-not-exist", tmp_path / "csv")
    assert "Expected layout" in str(error.value)
    assert "Libri2Mix/" in str(error.value)


def test_wrong_sample_rate_folder(tmp_path, make_librimix_tree):
    make_librimix_tree(tmp_path, sample_rate=16000)
    with pytest.raises(
        DataError, match="found wav16k/ but not wav8k/"
    ) as error:
        prepare_librimix(tmp_path, tmp_path / "csv", splits=["dev"])
    assert str(tmp_path / "Libri2Mix" / "wav8k") in str(error.value)
    assert not (tmp_path / "csv").exists()


def test_wrong_speaker_count_names_corpus_folder(tmp_path, make_librimix_tree):
    make_librimix_tree(tmp_path, n_spks=3)
    with pytest.raises(DataError, match="found Libri3Mix/ but not Libri2Mix/"):
        prepare_librimix(tmp_path, tmp_path / "csv", splits=["dev"])


def test_speaker_count_of_librimix_folder_is_named(
    tmp_path, make_librimix_tree
):
    make_librimix_tree(tmp_path, n_spks=2)
    with pytest.raises(DataError, match=r"Libri2Mix but n_spks=3 \(num_spks"):
        prepare_librimix(
            tmp_path / "Libri2Mix", tmp_path / "csv", n_spks=3, splits=["dev"]
        )
    assert not (tmp_path / "csv").exists()


def test_missing_split_and_subfolder(tmp_path, make_wham_tree):
    make_wham_tree(tmp_path, splits=("tr", "tt"))
    for wav in (tmp_path / "wav8k" / "min" / "tt" / "noise").iterdir():
        wav.unlink()
    (tmp_path / "wav8k" / "min" / "tt" / "noise").rmdir()
    with pytest.raises(DataError) as error:
        prepare_wham(tmp_path, tmp_path / "csv")
    message = str(error.value)
    assert "2 missing folder(s)" in message
    assert str(tmp_path / "wav8k" / "min" / "cv") + "/" in message
    assert str(tmp_path / "wav8k" / "min" / "tt" / "noise") + "/" in message
    assert "{mix_both, s1, s2, noise, mix_clean}/<ID>.wav" in message
    # the layout is checked before any CSV is written
    assert not (tmp_path / "csv").exists()


def test_missing_mixture_in_subfolder(tmp_path, make_librimix_tree):
    tree = make_librimix_tree(tmp_path, splits=("dev", "test"))
    lost = sorted(tree["test"])[1]
    (tmp_path / "Libri2Mix/wav8k/min/test/s2" / f"{lost}.wav").unlink()
    with pytest.raises(DataError, match="1 mixture file") as error:
        prepare_librimix(tmp_path, tmp_path / "csv", splits=("dev", "test"))
    assert f"test/s2/ lacks {lost}.wav" in str(error.value)
    assert not (tmp_path / "csv").exists()


def test_corrupt_mixture_is_named(tmp_path, make_librimix_tree):
    tree = make_librimix_tree(tmp_path)
    bad = (
        tmp_path
        / "Libri2Mix/wav8k/min/dev/mix_both"
        / f"{sorted(tree['dev'])[0]}.wav"
    )
    bad.write_bytes(b"not a wav file at all" * 10)
    with pytest.raises(DataError, match="corrupt") as error:
        prepare_librimix(tmp_path, tmp_path / "csv", splits=["dev"])
    assert str(bad) in str(error.value)
    assert not (tmp_path / "csv").exists()


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="n_spks=4"):
        prepare_librimix(tmp_path, tmp_path, n_spks=4)
    with pytest.raises(ValueError, match="splits='train'"):
        prepare_librimix(tmp_path, tmp_path, splits=["train"])
    with pytest.raises(ValueError, match="version='wsj'"):
        prepare_wham(tmp_path, tmp_path, version="wsj")


def test_skip_prep_touches_nothing(tmp_path):
    csv_paths = prepare_librimix(
        tmp_path / "absent", tmp_path / "csv", skip_prep=True
    )
    assert sorted(csv_paths) == ["dev", "test", "train-360"]
    assert list(tmp_path.iterdir()) == []


def test_run_on_main(tmp_path, make_librimix_tree):
    from speechbrain.utils.distributed import run_on_main

    make_librimix_tree(tmp_path)
    csv_paths = run_on_main(
        prepare_librimix,
        kwargs={
            "data_folder": tmp_path,
            "save_folder": tmp_path / "csv",
            "splits": ["dev"],
        },
    )
    assert len(read_csv(csv_paths["dev"])[1]) == 2


def test_command_line(tmp_path, make_librimix_tree, capsys):
    make_librimix_tree(tmp_path, n_spks=3, sample_rate=16000, mode="max")
    main(
        [
            str(tmp_path),
            str(tmp_path / "csv"),
            "--n-spks=3",
            "--sample-rate=16000",
            "--mode=max",
            "--condition=clean",
            "--splits",
            "dev",
            "--check-audio",
        ]
    )
    header, rows = read_csv(tmp_path / "csv" / "libri3mix_dev.csv")
    assert "s3_wav" in header and len(rows) == 2
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "absent"), str(tmp_path / "csv")])
    assert exit_info.value.code == 1
    assert "absent does not exist" in capsys.readouterr().err
