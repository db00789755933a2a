"""Bad and unusual input, table by table: every case of `gmsep separate`,
`evaluate`, `export`, `upgrade-checkpoints`, the Python interface and
`train.py` must end in a clear error (one line naming the file or setting,
exit code 2, or a ValueError / TypeError saying what was expected) or in its
documented behaviour (README, "Odd input"), and must leave every file that
existed before it exactly as it was (checksums before and after).

The cases run in-process on the tiny exported model of tiny_config.
"""

import hashlib
import json
import shutil
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from gmsep.cli import main
from gmsep.data.audio import DataError
from gmsep.data.mixing import integrated_loudness
from gmsep.data.outputs import OutputError
from gmsep.inference.export import export_pretrained
from gmsep.inference.pretrained import (
    NoiseRobustSeparation,
    PretrainedFolderError,
)
from gmsep.training.config_checks import ConfigError
from tiny_config import REPO, make_experiment, tiny_masknet

import train

RATE = 8000  # the tiny model's
FRAMES = RATE // 4  # 0.25 s: every "good" input


def _noise(frames, channels=None, amplitude=0.3, seed=0):
    shape = frames if channels is None else (frames, channels)
    return np.random.default_rng(seed).uniform(-amplitude, amplitude, shape)


def _write_inputs(audio):
    """One file per kind of input; returns nothing, the names say it all."""
    audio.mkdir()
    sf.write(audio / "good.wav", _noise(FRAMES), RATE)
    sf.write(audio / "a.wav", _noise(FRAMES, seed=1), RATE)
    sf.write(audio / "a_s1.wav", _noise(FRAMES, seed=2), RATE)
    sf.write(audio / "stereo.wav", _noise(FRAMES, 2), RATE)
    sf.write(audio / "k16.wav", _noise(2 * FRAMES), 16000)
    sf.write(audio / "k44.wav", _noise(11025), 44100)  # 0.25 s
    sf.write(audio / "k4.wav", _noise(FRAMES // 2), 4000)
    sf.write(audio / "k500.wav", _noise(500), 500)
    sf.write(audio / "flac.flac", _noise(FRAMES), RATE)
    nan = _noise(FRAMES)
    nan[[10, 20, 30]] = np.nan
    sf.write(audio / "nan.wav", nan, RATE, subtype="FLOAT")
    inf = _noise(FRAMES)
    inf[[5, 6]] = [np.inf, -np.inf]
    sf.write(audio / "inf.wav", inf, RATE, subtype="FLOAT")
    # the tiny model's sources exceed full scale for such an input
    sf.write(audio / "loud.wav", _noise(FRAMES, amplitude=300), RATE, "FLOAT")
    sf.write(audio / "one.wav", np.full(1, 0.1), RATE)
    sf.write(audio / "ms10.wav", _noise(80), RATE)
    sf.write(audio / "ms99.wav", _noise(792), RATE)
    sf.write(audio / "ms100.wav", _noise(800), RATE)
    sf.write(audio / "silent.wav", np.zeros(FRAMES), RATE)
    sf.write(audio / "empty.wav", np.zeros(0), RATE)
    (audio / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (audio / "text.wav").write_text("these are my notes, not audio\n")
    whole = (audio / "good.wav").read_bytes()
    (audio / "trunc.wav").write_bytes(whole[: len(whole) // 2])
    (audio / "folder.wav").mkdir()
    # a sound header over audio data that do not decode
    sf.write(audio / "undecodable.flac", _noise(4 * FRAMES), RATE)
    data = bytearray((audio / "undecodable.flac").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 400] = b"\xff" * 400
    (audio / "undecodable.flac").write_bytes(bytes(data))
    (audio / "other").mkdir()
    sf.write(audio / "other" / "good.wav", _noise(FRAMES, seed=3), RATE)


def _bad_models(root, model):
    """Copies of the exported model, each broken in one way."""
    models = {}

    def broken(name, change):
        folder = shutil.copytree(model, root / f"model_{name}")
        change(folder)
        models[name] = folder

    def truncate(folder):
        data = (folder / "masknet.ckpt").read_bytes()
        (folder / "masknet.ckpt").write_bytes(data[: len(data) // 2])

    def other_shapes(folder):
        torch.save(tiny_masknet(2).state_dict(), folder / "masknet.ckpt")

    broken("truncated", truncate)
    broken("text", lambda f: (f / "masknet.ckpt").write_text("weights\n"))
    broken("list", lambda f: torch.save([1, 2], f / "masknet.ckpt"))
    broken("numbers", lambda f: torch.save({"w": 1}, f / "masknet.ckpt"))
    broken(
        "pickle",
        lambda f: torch.save({"w": np.zeros(2)}, f / "masknet.ckpt"),
    )
    broken("shapes", other_shapes)
    broken("no_decoder", lambda f: (f / "decoder.ckpt").unlink())
    broken("no_hparams", lambda f: (f / "hyperparams.yaml").unlink())
    broken("yaml", lambda f: (f / "hyperparams.yaml").write_text("a: [\n"))
    broken(
        "no_pretrainer",
        lambda f: (f / "hyperparams.yaml").write_text("sample_rate: 8000\n"),
    )

    def unknown_class(folder):
        path = folder / "hyperparams.yaml"
        text = path.read_text().replace(
            "!new:speechbrain.lobes.models.dual_path.Decoder",
            "!new:speechbrain.lobes.models.dual_path.NoSuchDecoder",
        )
        assert "NoSuchDecoder" in text
        path.write_text(text)

    broken("unknown_class", unknown_class)
    return models


def _bad_experiments(root, experiment):
    """Copies of the experiment folder, each broken in one way."""
    experiments = {}

    def broken(name, change):
        folder = shutil.copytree(experiment, root / f"exp_{name}")
        change(folder)
        experiments[name] = folder

    def corrupt(folder):
        for ckpt in (folder / "save").glob("CKPT+*/masknet.ckpt"):
            ckpt.write_bytes(b"\x00" * 10)

    def legacy(folder):
        shutil.rmtree(folder / "save")
        old = folder / "save" / "CKPT+2025-01-01+00-00-00+00"
        old.mkdir(parents=True)
        (old / "CKPT.yaml").write_text("end-of-epoch: true\nsi-snr: -3.0\n")
        (old / "separator.ckpt").write_bytes(b"half a checkpoint")

    def empty_save(folder):
        shutil.rmtree(folder / "save")
        (folder / "save").mkdir()

    def bad_meta(folder):
        for meta in (folder / "save").glob("CKPT+*/CKPT.yaml"):
            meta.write_text("end-of-epoch: [\n")

    broken("corrupt", corrupt)
    broken("bad_meta", bad_meta)
    broken("no_hparams", lambda f: (f / "hyperparams.yaml").unlink())
    broken("yaml", lambda f: (f / "hyperparams.yaml").write_text("a: [\n"))
    broken("no_save", lambda f: shutil.rmtree(f / "save"))
    broken("empty_save", empty_save)
    broken("legacy", legacy)
    return experiments


def _write_csv(path, rows):
    header = ["ID", "duration", "mix_wav", "s1_wav", "s2_wav"]
    columns = list(rows[0]) if rows else header
    lines = [",".join(columns)] + [
        ",".join(str(row[c]) for c in columns) for row in rows
    ]
    path.write_text("\n".join(lines) + "\n")


def _evaluation_sets(folder, audio):
    """Prepared test CSVs, good and bad; returns name -> path."""
    folder.mkdir()

    def utterance(i, frames=FRAMES, **replace):
        files = {}
        for j, name in enumerate(("s1", "s2")):
            path = folder / f"{name}_{i}.wav"
            if not path.exists():
                sf.write(path, _noise(frames, seed=10 * i + j), RATE)
            files[name] = path
        mix = folder / f"mix_{i}.wav"
        if not mix.exists():
            signal = sum(sf.read(files[n])[0] for n in ("s1", "s2"))
            sf.write(mix, signal + _noise(frames, amplitude=0.02), RATE)
        files["mix"] = mix
        files.update(replace)
        return {
            "ID": f"u{i}",
            "duration": frames / RATE,
            **{f"{name}_wav": path for name, path in files.items()},
        }

    silent = folder / "silent_ref.wav"
    sf.write(silent, np.zeros(FRAMES), RATE)
    short = folder / "short_ref.wav"
    sf.write(short, _noise(40), RATE)
    sets = {
        "good": [utterance(0), utterance(1)],
        "duplicate": [utterance(0), utterance(0)],
        "silent": [utterance(0), utterance(1, s1=silent)],
        "short": [utterance(0), utterance(1, s2=short)],
        "all_silent": [utterance(1, s1=silent)],
        "missing_file": [utterance(0, s2=folder / "gone.wav")],
        "nan_ref": [utterance(0, s1=audio / "nan.wav")],
        "trunc_ref": [utterance(0, s2=audio / "trunc.wav")],
        "two_bad": [utterance(0, s1=audio / "nan.wav", s2=audio / "empty.wav")],
        "empty": [],
    }
    paths = {}
    for name, rows in sets.items():
        paths[name] = folder / f"{name}.csv"
        _write_csv(paths[name], rows)
    no_s2 = [
        {k: v for k, v in row.items() if k != "s2_wav"} for row in sets["good"]
    ]
    paths["no_s2"] = folder / "no_s2.csv"
    _write_csv(paths["no_s2"], no_s2)
    paths["no_id"] = folder / "no_id.csv"
    _write_csv(
        paths["no_id"],
        [{k: v for k, v in row.items() if k != "ID"} for row in sets["good"]],
    )
    return paths


def _training_data(folder, audio):
    """Prepared two-speaker 8 kHz CSVs of one item (train.py with
    --skip_prep uses them as they are); returns the arguments."""
    folder.mkdir()
    columns = ["mix", "s1", "s2", "noise", "clean"]
    for column in columns:
        sf.write(folder / f"{column}.wav", np.zeros(800, np.int16), RATE)
    header = "ID,duration," + ",".join(f"{c}_wav" for c in columns)
    row = "item,0.1," + ",".join(str(folder / f"{c}.wav") for c in columns)
    args = {"skip_prep": "True", "data_folder": folder}
    for key in ("train_data", "valid_data", "test_data"):
        (folder / f"{key}.csv").write_text(f"{header}\n{row}\n")
        args[key] = folder / f"{key}.csv"
    for name, path in (
        ("trunc", audio / "trunc.wav"),
        ("gone", folder / "gone.wav"),
    ):
        bad_row = row.replace(str(folder / "s1.wav"), str(path))
        (folder / f"{name}.csv").write_text(f"{header}\n{bad_row}\n")
    return args


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """The workspace every case reads: models, experiments, audio, CSVs."""
    root = tmp_path_factory.mktemp("bad_input")
    experiment, _ = make_experiment(root)
    model = export_pretrained(experiment, root / "pretrained")
    baseline_experiment, _ = make_experiment(root / "base", enhancer=False)
    baseline = export_pretrained(baseline_experiment, root / "baseline")
    audio = root / "audio"
    _write_inputs(audio)
    (root / "notes.txt").write_text("a file of the user's\n")
    user_folder = root / "user_folder"
    user_folder.mkdir()
    (user_folder / "thesis.txt").write_text("weeks of work\n")
    trained = root / "trained"  # an experiment folder of train.py's
    trained.mkdir()
    (trained / "hyperparams.yaml").write_text("# the run's settings\n")
    return SimpleNamespace(
        root=root,
        experiment=experiment,
        model=model,
        baseline=baseline,
        audio=audio,
        models=_bad_models(root, model),
        experiments=_bad_experiments(root, experiment),
        csv=_evaluation_sets(root / "eval", audio),
        train_args=_training_data(root / "train_data", audio),
        notes=root / "notes.txt",
        user_folder=user_folder,
        trained=trained,
    )


@pytest.fixture(scope="module")
def model(ws):
    return NoiseRobustSeparation.from_hparams(source=ws.model)


def checksums(*folders):
    return {
        path: hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in folders
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# -- outcomes ----------------------------------------------------------------


class Error:
    """A user error: exit code 2, no traceback, ``lines`` error lines (one
    per problem) that together name every text; nothing is written."""

    kind = "clear error"

    def __init__(self, *texts, lines=1):
        self.texts, self.lines = texts, lines

    def check(self, code, out, err, ws, d, caplog):
        assert code == 2, (out, err)
        assert "Traceback" not in err
        errors = [line for line in err.splitlines() if "error: " in line]
        assert len(errors) == self.lines, err
        assert all(line.startswith(("gmsep", "train.py")) for line in errors)
        for text in self.texts:
            assert text in "\n".join(errors), err
        assert "weights_only" not in err


class Works:
    """Documented behaviour: exit code 0, then ``check``."""

    kind = "documented behaviour"

    def __init__(self, check=None, warns=()):
        self.check_outputs, self.warns = check, warns

    def check(self, code, out, err, ws, d, caplog):
        assert code == 0, err
        for text in self.warns:
            assert text in caplog.text, caplog.text
        if self.check_outputs is not None:
            self.check_outputs(ws, d)


def Case(name, argv, expect, setup=None, replaced=()):
    """argv(ws, d) -> the command line; setup(ws, d, monkeypatch) runs
    first; replaced(ws, d): pre-existing files the case may change (an
    earlier output, with --overwrite)."""
    return pytest.param(
        SimpleNamespace(
            argv=argv, expect=expect, setup=setup, replaced=replaced
        ),
        id=name,
    )


def sep(*inputs, out=None, model=None, extra=(), command="separate"):
    """`gmsep separate` (or command) of ws.audio / input, into d / out by
    default."""

    def argv(ws, d):
        return [
            command,
            *(ws.audio / name for name in inputs),
            "--model",
            model(ws) if model else ws.model,
            "--out",
            out(ws, d) if out else d / "out",
            *extra,
        ]

    return argv


def ev(csv, out=None, extra=()):
    """`gmsep evaluate` of ws.csv[csv] (or csv(ws, d)), into d / eval."""
    return lambda ws, d: [
        "evaluate",
        "--model",
        ws.model,
        "--csv",
        csv(ws, d) if callable(csv) else ws.csv[csv],
        "--out",
        out(ws, d) if out else d / "eval",
        *extra,
    ]


def exp(experiment=None, out=None, extra=()):
    return lambda ws, d: [
        "export",
        experiment(ws) if experiment else ws.experiment,
        "--out",
        out(ws, d) if out else d / "pretrained",
        *extra,
    ]


def bad_model(name):
    return lambda ws: ws.models[name]


def frames_of(path):
    return sf.info(path).frames


def outputs_match(stem, rate, frames, suffixes=("_s1", "_s2"), folder="out"):
    """Each output exists at the file's rate with exactly its frames."""

    def check(ws, d):
        for suffix in suffixes:
            info = sf.info(d / folder / f"{stem}{suffix}.wav")
            assert (info.samplerate, info.frames) == (rate, frames)
            assert np.isfinite(
                sf.read(d / folder / f"{stem}{suffix}.wav")[0]
            ).all()

    return check


def within_full_scale(ws, d):
    for suffix in ("_s1", "_s2"):
        samples, _ = sf.read(d / "out" / f"loud{suffix}.wav", dtype="int16")
        assert np.abs(samples.astype(int)).max() <= round(0.99 * 32768) + 1
    peak = max(
        np.abs(sf.read(d / "out" / f"loud{s}.wav")[0]).max()
        for s in ("_s1", "_s2")
    )
    assert peak == pytest.approx(0.99, abs=1e-3)


def float_beyond_full_scale(ws, d):
    """FLOAT files hold any value: nothing scaled, nothing clipped."""
    for suffix in ("_s1", "_s2"):
        assert sf.info(d / "out" / f"loud{suffix}.wav").subtype == "FLOAT"
    peak = max(
        np.abs(sf.read(d / "out" / f"loud{s}.wav")[0]).max()
        for s in ("_s1", "_s2")
    )
    assert peak > 1


def peaks_at(peak, stem="good", each=True):
    """Each output (or the louder of them) peaks at peak."""

    def check(ws, d):
        peaks = [
            np.abs(sf.read(d / "out" / f"{stem}{suffix}.wav")[0]).max()
            for suffix in ("_s1", "_s2")
        ]
        for value in peaks if each else [max(peaks)]:
            assert value == pytest.approx(peak, abs=1e-4)

    return check


def as_loud_as_the_input(stem):
    def check(ws, d):
        mix, rate = sf.read(ws.audio / f"{stem}.wav")
        target = integrated_loudness(torch.from_numpy(mix), rate)
        for suffix in ("_s1", "_s2"):
            out, out_rate = sf.read(d / "out" / f"{stem}{suffix}.wav")
            loudness = integrated_loudness(torch.from_numpy(out), out_rate)
            assert loudness == pytest.approx(target, abs=0.01)

    return check


def subtype_is(stem, subtype):
    def check(ws, d):
        for suffix in ("_s1", "_s2"):
            assert sf.info(d / "out" / f"{stem}{suffix}.wav").subtype == subtype

    return check


def file_in(*parts):
    return lambda ws, d: d.joinpath(*parts)


def existing_outputs(ws, d, monkeypatch):
    (d / "out").mkdir()
    sf.write(d / "out" / "good_s1.wav", np.zeros(10), RATE)
    (d / "out" / "my_notes.txt").write_text("keep me\n")


def no_write_permission(ws, d, monkeypatch):
    (d / "locked").mkdir()
    real_access = __import__("os").access
    locked = str(d / "locked")
    monkeypatch.setattr(
        "os.access",
        lambda path, mode, **kw: (
            False if str(path) == locked else real_access(path, mode, **kw)
        ),
    )


def from_list(ws, d):
    """`gmsep separate` of the list d / todo.txt (see listing)."""
    return ["separate", d / "todo.txt", "--model", ws.model, "--out", d / "out"]


def listing(*lines):
    """Writes d / todo.txt: lines naming files of ws.audio, comments kept."""

    def setup(ws, d, monkeypatch):
        text = [
            line if line.startswith("#") else ws.audio / line for line in lines
        ]
        (d / "todo.txt").write_text("".join(f"{line}\n" for line in text))

    return setup


def complete_outputs(ws, d, monkeypatch):
    (d / "out").mkdir()
    for suffix in ("_s1", "_s2"):
        sf.write(d / "out" / f"good{suffix}.wav", np.zeros(10), RATE)


def cuda_devices(count):
    """As if this machine had count CUDA devices (none: CUDA unavailable)."""

    def setup(ws, d, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)

    return setup


def a_file(ws, d, monkeypatch):
    (d / "taken").write_text("a file, not a folder\n")


def into_earlier_export(ws, d, monkeypatch):
    shutil.copytree(ws.model, d / "earlier")
    monkeypatch.chdir(d / "earlier")


def earlier_export(ws, d, monkeypatch):
    shutil.copytree(ws.model, d / "pretrained")


def earlier_export_and_mine(ws, d, monkeypatch):
    shutil.copytree(ws.model, d / "pretrained")
    (d / "pretrained" / "my_results.csv").write_text("keep me\n")


def cwd_is(folder):
    def setup(ws, d, monkeypatch):
        monkeypatch.chdir(folder(ws, d))

    return setup


def evaluation_summary(count, excluded=(), reason=None):
    def check(ws, d):
        summary = json.loads((d / "eval" / "summary.json").read_text())
        assert summary["count"] == count
        assert [e["ID"] for e in summary["excluded"]] == list(excluded)
        if reason:
            assert all(reason in e["reason"] for e in summary["excluded"])
        means = summary["means"]
        assert all(np.isfinite(means[k]) for k in ("sdr_i", "si-snr_i"))
        # 0.25 s of noise: STOI is undefined on each, listed, mean null
        assert means["stoi"] is None and summary["scored"]["stoi"] == 0
        unscored = [
            e["ID"] for e in summary["unscored"] if e["metric"] == "stoi"
        ]
        assert len(unscored) == count
        rows = (d / "eval" / "metrics.csv").read_text().splitlines()
        assert len(rows) == 1 + count

    return check


def own_outputs_replaced(ws, d):
    assert (d / "out" / "my_notes.txt").read_text() == "keep me\n"
    assert sf.info(d / "out" / "good_s1.wav").frames == FRAMES


def in_current_folder(ws, d):
    assert sf.info(d / "good_s1.wav").frames == FRAMES


def export_replaced(ws, d):
    names = sorted(p.name for p in (d / "pretrained").iterdir())
    assert names == sorted(p.name for p in ws.model.iterdir())


CLI_CASES = [
    # -- separate: input files ------------------------------------------------
    Case("missing", sep("missing.wav"), Error("missing.wav: file not found")),
    Case("corrupt", sep("corrupt.wav"), Error("corrupt.wav: unreadable")),
    Case("text_as_wav", sep("text.wav"), Error("text.wav: unreadable")),
    Case("empty", sep("empty.wav"), Error("empty.wav: empty audio file")),
    Case(
        "folder_named_wav",
        sep("folder.wav"),
        Error("folder.wav: no audio file (.wav, .flac"),
    ),
    Case("truncated", sep("trunc.wav"), Error("trunc.wav: truncated")),
    Case(
        "nan",
        sep("nan.wav"),
        Error("nan.wav: 3 of 2000 samples are not finite"),
    ),
    Case(
        "inf",
        sep("inf.wav"),
        Error("inf.wav: 2 of 2000 samples are not finite"),
    ),
    Case("one_sample", sep("one.wav"), Error("one.wav: 1 frames", "0.1 s")),
    Case("10_ms", sep("ms10.wav"), Error("ms10.wav: 80 frames", "0.1 s")),
    Case("99_ms", sep("ms99.wav"), Error("ms99.wav: 792 frames")),
    Case(
        "500_hz", sep("k500.wav"), Error("k500.wav: sample rate 500 Hz", "1000")
    ),
    Case(
        "two_bad_inputs",
        sep("nan.wav", "missing.wav"),
        Error("nan.wav: 3 of", "missing.wav: file not found", lines=2),
    ),
    Case("good_and_bad", sep("good.wav", "trunc.wav"), Error("trunc.wav")),
    Case(
        "same_stem_twice",
        sep("good.wav", "other/good.wav"),
        Error("several inputs are named good.*"),
    ),
    Case(
        "glob_matches_nothing",
        sep("nothing*.ogg"),
        Error("nothing*.ogg: the pattern matches no audio file"),
    ),
    Case(
        "folder_without_audio",
        lambda ws, d: [
            "separate",
            ws.user_folder,
            "--model",
            ws.model,
            "--out",
            d / "out",
        ],
        Error("user_folder: no audio file (.wav, .flac"),
    ),
    Case(
        "list_not_found",
        sep("todo.txt"),
        Error("todo.txt: list file not found"),
    ),
    Case(
        "list_names_a_missing_file",
        from_list,
        Error(
            "todo.txt, line 2: ",
            "gone.wav: file not found",
            "todo.txt, line 4: ",
            "nothing*.ogg: the pattern matches no audio file",
            lines=2,
        ),
        setup=listing("good.wav", "gone.wav", "# a comment", "nothing*.ogg"),
    ),
    Case(
        "list_names_a_truncated_file",
        from_list,
        Error("trunc.wav: truncated"),
        setup=listing("good.wav", "trunc.wav"),
    ),
    Case(
        "undecodable_data_fail_that_recording",
        sep("undecodable.flac"),
        Error("1 of 1 recording(s) failed", "run the same command again"),
    ),
    Case(
        "folder_of_recordings",
        sep("other"),
        Works(outputs_match("good", RATE, FRAMES)),
    ),
    Case(
        "list",
        from_list,
        Works(
            lambda ws, d: (
                outputs_match("good", RATE, FRAMES)(ws, d),
                outputs_match("k16", 16000, 4000)(ws, d),
            )
        ),
        setup=listing("other", "k16.wav"),
    ),
    Case(
        "enhance_with_a_model_without_enhancer",
        lambda ws, d: [
            "enhance",
            ws.audio / "good.wav",
            "--model",
            ws.baseline,
            "--out",
            d / "out",
        ],
        Error("enhance: the model", "has no enhancer"),
    ),
    # -- separate: outputs ------------------------------------------------------
    Case(
        "output_is_an_input",
        sep(
            "a.wav",
            "a_s1.wav",
            out=lambda ws, d: ws.audio,
            extra=["--overwrite"],
        ),
        Error("a_s1.wav: would replace an input"),
    ),
    Case(
        "output_is_an_input_no_overwrite",
        sep("a.wav", "a_s1.wav", out=lambda ws, d: ws.audio),
        Error("a_s1.wav: would replace an input"),
    ),
    Case(
        "out_is_a_file",
        sep("good.wav", out=lambda ws, d: ws.notes),
        Error("notes.txt: --out exists and is not a folder"),
    ),
    Case(
        "out_under_a_file",
        sep("good.wav", out=lambda ws, d: ws.notes / "out"),
        Error("--out lies under", "notes.txt, which is a file"),
    ),
    Case(
        "out_not_writable",
        sep("good.wav", out=file_in("locked")),
        Error("locked: --out is not writable"),
        setup=no_write_permission,
    ),
    Case(
        "outputs_exist",
        sep("good.wav"),
        Error("good_s1.wav: exists", "--overwrite"),
        setup=existing_outputs,
    ),
    Case(
        "enhanced_without_enhancer",
        sep("good.wav", model=lambda ws: ws.baseline, extra=["--enhanced"]),
        Error("--enhanced", "has no enhancer"),
    ),
    # -- separate: the model folder -----------------------------------------------
    Case(
        "model_not_local",
        sep("good.wav", model=lambda ws: "speechbrain/sepformer-wham"),
        Error("speechbrain/sepformer-wham: no such folder", "only local"),
    ),
    Case(
        "model_without_decoder",
        sep("good.wav", model=bad_model("no_decoder")),
        Error("decoder.ckpt: file not found"),
    ),
    Case(
        "model_without_hparams",
        sep("good.wav", model=bad_model("no_hparams")),
        Error("hyperparams.yaml: file not found"),
    ),
    Case(
        "model_invalid_yaml",
        sep("good.wav", model=bad_model("yaml")),
        Error("hyperparams.yaml: invalid YAML"),
    ),
    Case(
        "model_without_pretrainer",
        sep("good.wav", model=bad_model("no_pretrainer")),
        Error("hyperparams.yaml: no `pretrainer:`"),
    ),
    Case(
        "model_unknown_class",
        sep("good.wav", model=bad_model("unknown_class")),
        Error("hyperparams.yaml: cannot build the model", "NoSuchDecoder"),
    ),
    Case(
        "ckpt_truncated",
        sep("good.wav", model=bad_model("truncated")),
        Error("masknet.ckpt: not a readable checkpoint"),
    ),
    Case(
        "ckpt_text",
        sep("good.wav", model=bad_model("text")),
        Error("masknet.ckpt: not a readable checkpoint"),
    ),
    Case(
        "ckpt_pickle",
        sep("good.wav", model=bad_model("pickle")),
        Error("masknet.ckpt: not a readable checkpoint"),
    ),
    Case(
        "ckpt_list",
        sep("good.wav", model=bad_model("list")),
        Error("masknet.ckpt: holds a list, expected a state_dict"),
    ),
    Case(
        "ckpt_numbers",
        sep("good.wav", model=bad_model("numbers")),
        Error("masknet.ckpt: holds a dict, expected a state_dict"),
    ),
    Case(
        "ckpt_other_shapes",
        sep("good.wav", model=bad_model("shapes")),
        Error("masknet.ckpt: does not fit its module"),
    ),
    # -- separate: option values ----------------------------------------------------
    Case(
        "chunk_inf",
        sep("good.wav", extra=["--chunk-seconds", "inf"]),
        Error("--chunk-seconds: 'inf': expected a positive, finite number"),
    ),
    Case(
        "chunk_nan",
        sep("good.wav", extra=["--chunk-seconds", "nan"]),
        Error("--chunk-seconds: 'nan'"),
    ),
    Case(
        "chunk_text",
        sep("good.wav", extra=["--chunk-seconds", "abc"]),
        Error("--chunk-seconds: 'abc' is not a number of seconds"),
    ),
    Case(
        "chunk_negative",
        sep("good.wav", extra=["--chunk-seconds=-1"]),
        Error("--chunk-seconds: '-1'"),
    ),
    Case(
        "chunk_zero",
        sep("good.wav", extra=["--chunk-seconds", "0"]),
        Error("--chunk-seconds: '0'"),
    ),
    Case(
        "chunk_below_kernel",
        sep("good.wav", extra=["--chunk-seconds", "0.001"]),
        Error("--chunk-seconds", "at least 16 samples"),
    ),
    Case(
        "overlap_nan",
        sep("good.wav", extra=["--overlap-seconds", "nan"]),
        Error("--overlap-seconds: 'nan'"),
    ),
    Case(
        "overlap_inf",
        sep("good.wav", extra=["--overlap-seconds", "inf"]),
        Error("--overlap-seconds: 'inf'"),
    ),
    Case(
        "overlap_as_long_as_chunk",
        sep(
            "good.wav", extra=["--chunk-seconds", "1", "--overlap-seconds", "1"]
        ),
        Error("overlap_seconds=1.0: must be positive and shorter"),
    ),
    Case(
        "chunk_batch_zero",
        sep("good.wav", extra=["--chunk-batch", "0"]),
        Error("--chunk-batch: 0: expected an integer of at least 1"),
    ),
    Case(
        "chunk_batch_text",
        sep("good.wav", extra=["--chunk-batch", "2.5"]),
        Error("--chunk-batch: '2.5' is not an integer"),
    ),
    Case(
        "backend_unknown",
        sep("good.wav", extra=["--backend", "tensorrt"]),
        Error("--backend: invalid choice: 'tensorrt'"),
    ),
    Case(
        "backend_onnx_not_exported",
        sep("good.wav", extra=["--backend", "onnxruntime"]),
        Error("--backend onnxruntime", "separator.onnx not found", "--onnx"),
    ),
    Case(
        "quantize_unknown",
        sep("good.wav", extra=["--quantize", "int4"]),
        Error("--quantize: invalid choice: 'int4'"),
    ),
    Case(
        "quantize_onnx_not_exported",
        sep(
            "good.wav", extra=["--backend", "onnxruntime", "--quantize", "int8"]
        ),
        Error("--backend onnxruntime", "separator-int8.onnx not found"),
    ),
    Case(
        "device_unknown",
        sep("good.wav", extra=["--device", "gpu"]),
        Error("--device: 'gpu': expected cpu, cuda or cuda:N"),
    ),
    Case(
        "device_cuda_without_cuda",
        sep("good.wav", extra=["--device", "cuda"]),
        Error("--device cuda: CUDA is not available", "use --device cpu"),
        setup=cuda_devices(0),
    ),
    Case(
        "device_cuda_index_absent",
        sep("good.wav", extra=["--device", "cuda:3"]),
        Error("--device cuda:3: this machine has 1 CUDA device(s)"),
        setup=cuda_devices(1),
    ),
    Case(
        "evaluate_device_cuda_without_cuda",
        ev("good", extra=["--device", "cuda:0"]),
        Error("--device cuda:0: CUDA is not available"),
        setup=cuda_devices(0),
    ),
    Case(
        "device_cpu_quiet",
        sep("good.wav", extra=["--device", "cpu", "--quiet"]),
        Works(outputs_match("good", RATE, FRAMES)),
    ),
    Case(
        "unknown_option",
        sep("good.wav", extra=["--normalise"]),
        Error("unrecognized arguments: --normalise"),
    ),
    Case(
        "no_model",
        lambda ws, d: ["separate", ws.audio / "good.wav", "--out", d],
        Error("the following arguments are required: --model"),
    ),
    Case("no_command", lambda ws, d: [], Error("required: command")),
    Case("unknown_command", lambda ws, d: ["split"], Error("invalid choice")),
    # -- separate: odd but valid input ------------------------------------------------
    Case(
        "above_full_scale",
        sep("loud.wav", extra=["--normalize", "none"]),
        Works(within_full_scale, warns=["loud_s1.wav", "above full scale"]),
    ),
    Case(
        "above_full_scale_float",
        sep("loud.wav", extra=["--normalize", "none", "--subtype", "float"]),
        Works(float_beyond_full_scale),
    ),
    Case("peak_by_default", sep("good.wav"), Works(peaks_at(0.99))),
    Case(
        "loudness",
        sep("k16.wav", extra=["--normalize", "loudness", "--subtype", "FLOAT"]),
        Works(as_loud_as_the_input("k16")),
    ),
    Case(
        # as loud as this noise, the sources would clip a 16-bit file
        "loudness_beyond_full_scale",
        sep("k16.wav", extra=["--normalize", "loudness"]),
        Works(
            peaks_at(0.99, "k16", each=False),
            warns=["k16_s1.wav and 1 more file", "above full scale"],
        ),
    ),
    Case(
        "pcm_24",
        sep("good.wav", extra=["--subtype", "PCM_24"]),
        Works(subtype_is("good", "PCM_24")),
    ),
    Case(
        "subtype_unknown",
        sep("good.wav", extra=["--subtype", "PCM_32"]),
        Error("--subtype: invalid choice: 'PCM_32'"),
    ),
    Case(
        "normalize_unknown",
        sep("good.wav", extra=["--normalize", "rms"]),
        Error("--normalize: invalid choice: 'rms'"),
    ),
    Case("44_1_khz", sep("k44.wav"), Works(outputs_match("k44", 44100, 11025))),
    Case("16_khz", sep("k16.wav"), Works(outputs_match("k16", 16000, 4000))),
    Case(
        "4_khz",
        sep("k4.wav"),
        Works(
            outputs_match("k4", 4000, FRAMES // 2),
            warns=["k4.wav: 4000 Hz, below the model's 8000 Hz"],
        ),
    ),
    Case(
        "stereo",
        sep("stereo.wav"),
        Works(
            outputs_match("stereo", RATE, FRAMES), warns=["averaged to mono"]
        ),
    ),
    Case(
        "exactly_100_ms",
        sep("ms100.wav"),
        Works(outputs_match("ms100", RATE, 800)),
    ),
    Case(
        "silence",
        sep("silent.wav"),
        Works(outputs_match("silent", RATE, FRAMES)),
    ),
    Case("flac", sep("flac.flac"), Works(outputs_match("flac", RATE, FRAMES))),
    Case(
        "enhanced_at_16_khz",
        sep("k16.wav", extra=["--enhanced"]),
        Works(outputs_match("k16", 16000, 4000, ("_s1", "_s2", "_enhanced"))),
    ),
    Case(
        "chunked",
        sep(
            "good.wav",
            extra=["--chunk-seconds", "0.1", "--overlap-seconds", "0.02"],
        ),
        Works(outputs_match("good", RATE, FRAMES)),
    ),
    Case(
        "complete_outputs_skipped",
        sep("good.wav"),
        Works(),
        setup=complete_outputs,
    ),
    Case(
        "overwrite_replaces_only_its_files",
        sep("good.wav", extra=["--overwrite"]),
        Works(own_outputs_replaced),
        setup=existing_outputs,
        replaced=lambda ws, d: [d / "out" / "good_s1.wav"],
    ),
    Case(
        "out_is_the_current_folder",
        sep("good.wav", out=lambda ws, d: "."),
        Works(in_current_folder),
        setup=cwd_is(lambda ws, d: d),
    ),
    Case(
        "separate_report_exists",
        sep("good.wav", extra=["--report"]),
        Error("report: exists; use --overwrite"),
        setup=lambda ws, d, mp: (
            (d / "out" / "report").mkdir(parents=True),
            (d / "out" / "report" / "report.html").write_text("earlier\n"),
        ),
    ),
    Case(
        "separate_report_holds_other_files",
        sep("good.wav", extra=["--report", "--overwrite"]),
        Error("report: holds notes.txt, which this command does not write"),
        setup=lambda ws, d, mp: (
            (d / "out" / "report").mkdir(parents=True),
            (d / "out" / "report" / "notes.txt").write_text("mine\n"),
        ),
    ),
    Case(
        "separate_input_in_the_report",
        lambda ws, d: [
            "separate",
            d / "out" / "report" / "mine.wav",
            *["--model", ws.model, "--out", d / "out"],
            *["--report", "--overwrite"],
        ],
        Error("mine.wav: an input of this command lies in"),
        setup=lambda ws, d, mp: (
            (d / "out" / "report").mkdir(parents=True),
            shutil.copy(ws.audio / "a.wav", d / "out" / "report" / "mine.wav"),
        ),
    ),
    Case(
        "separate_outputs_into_the_report",
        lambda ws, d: [
            "separate",
            d / "talks",  # holds talks/report/x.wav: out/report/x_s1.wav
            *["--model", ws.model, "--out", d / "out", "--report"],
        ],
        Error("x.wav: its outputs would go into", "--report replaces whole"),
        setup=lambda ws, d, mp: (
            (d / "talks" / "report").mkdir(parents=True),
            shutil.copy(ws.audio / "a.wav", d / "talks" / "report" / "x.wav"),
        ),
    ),
    Case(
        "separate_plots_without_report",
        sep("good.wav", extra=["--plots", "2"]),
        Error("--plots: only with --report"),
    ),
    Case(
        "enhance_report_exists",
        sep("good.wav", extra=["--report"], command="enhance"),
        Error("report: exists; use --overwrite"),
        setup=lambda ws, d, mp: (
            (d / "out" / "report").mkdir(parents=True),
            (d / "out" / "report" / "report.html").write_text("earlier\n"),
        ),
    ),
    Case(
        "enhance_report_holds_other_files",
        sep("good.wav", extra=["--report", "--overwrite"], command="enhance"),
        Error("report: holds notes.txt, which this command does not write"),
        setup=lambda ws, d, mp: (
            (d / "out" / "report").mkdir(parents=True),
            (d / "out" / "report" / "report.html").write_text("earlier\n"),
            (d / "out" / "report" / "notes.txt").write_text("mine\n"),
        ),
    ),
    Case(
        "enhance_plots_without_report",
        sep("good.wav", extra=["--plots", "2"], command="enhance"),
        Error("--plots: only with --report"),
    ),
    Case(
        "separate_plots_negative",
        sep("good.wav", extra=["--report", "--plots", "-1"]),
        Error("--plots"),
    ),
    # -- evaluate ------------------------------------------------------------------------
    Case("evaluate_good", ev("good"), Works(evaluation_summary(2))),
    Case(
        "evaluate_silent_reference",
        ev("silent"),
        Works(
            evaluation_summary(1, ["u1"], "reference s1 is silent"),
            warns=["u1: excluded, its metrics are undefined"],
        ),
    ),
    Case(
        "evaluate_short_reference",
        ev("short"),
        Works(evaluation_summary(1, ["u1"], "fewer than 0.1 s")),
    ),
    Case(
        "evaluate_all_undefined",
        ev("all_silent"),
        Error("all_silent.csv: no utterance has defined metrics"),
    ),
    Case(
        "evaluate_backend_onnx_not_exported",
        ev("good", extra=["--backend", "onnxruntime"]),
        Error("--backend onnxruntime", "separator.onnx not found"),
    ),
    Case(
        "evaluate_duplicate_ids",
        ev("duplicate"),
        Error("duplicate.csv", "'u0' (2 rows)", "must be unique"),
    ),
    Case(
        "evaluate_no_s2",
        ev("no_s2"),
        Error("no_s2.csv: missing column(s) s2_wav"),
    ),
    Case(
        "evaluate_no_id", ev("no_id"), Error("no_id.csv: missing column(s) ID")
    ),
    Case("evaluate_no_rows", ev("empty"), Error("empty.csv: no utterances")),
    Case(
        "evaluate_missing_csv",
        ev(lambda ws, d: d / "none.csv"),
        Error("none.csv: CSV not found"),
    ),
    Case(
        "evaluate_missing_audio",
        ev("missing_file"),
        Error("row u0 (s2_wav)", "gone.wav: file not found"),
    ),
    Case("evaluate_nan_reference", ev("nan_ref"), Error("nan.wav: 3 of 2000")),
    Case(
        "evaluate_truncated_reference",
        ev("trunc_ref"),
        Error("trunc.wav: truncated"),
    ),
    Case(
        "evaluate_two_bad_files",
        ev("two_bad"),
        Error("nan.wav", "empty.wav", lines=2),
    ),
    Case(
        "evaluate_csv_is_an_output",
        ev(lambda ws, d: d / "eval" / "metrics.csv"),
        Error("metrics.csv: would replace an input"),
        setup=lambda ws, d, mp: (
            (d / "eval").mkdir(),
            shutil.copy(ws.csv["good"], d / "eval" / "metrics.csv"),
        ),
    ),
    Case(
        "evaluate_outputs_exist",
        ev("good"),
        Error("summary.json: exists", "--overwrite"),
        setup=lambda ws, d, mp: (
            (d / "eval").mkdir(),
            (d / "eval" / "summary.json").write_text("{}\n"),
        ),
    ),
    Case(
        "evaluate_report_exists",
        ev("good"),
        Error("report: exists; use --overwrite"),
        setup=lambda ws, d, mp: (
            (d / "eval" / "report").mkdir(parents=True),
            (d / "eval" / "report" / "report.html").write_text("earlier\n"),
        ),
    ),
    Case(
        "evaluate_report_holds_other_files",
        ev("good", extra=["--overwrite"]),
        Error("report: holds notes.txt, which this command does not write"),
        setup=lambda ws, d, mp: (
            (d / "eval" / "report").mkdir(parents=True),
            (d / "eval" / "report" / "notes.txt").write_text("mine\n"),
        ),
    ),
    Case(
        "evaluate_report_is_a_file",
        ev("good", extra=["--overwrite"]),
        Error("report: exists and is not a folder"),
        setup=lambda ws, d, mp: (
            (d / "eval").mkdir(),
            (d / "eval" / "report").write_text("mine\n"),
        ),
    ),
    Case(
        "evaluate_input_in_the_report",
        ev(
            lambda ws, d: d / "eval" / "report" / "test.csv",
            extra=["--overwrite"],
        ),
        Error("test.csv: an input of this command lies in"),
        setup=lambda ws, d, mp: (
            (d / "eval" / "report").mkdir(parents=True),
            shutil.copy(ws.csv["good"], d / "eval" / "report" / "test.csv"),
        ),
    ),
    Case(
        "evaluate_out_is_a_file",
        ev("good", out=lambda ws, d: ws.notes),
        Error("notes.txt: --out exists and is not a folder"),
    ),
    Case(
        "evaluate_out_under_a_file",
        ev("good", out=lambda ws, d: ws.notes / "eval"),
        Error("--out lies under"),
    ),
    Case(
        "max_files_zero",
        ev("good", extra=["--max-files", "0"]),
        Error("--max-files: 0"),
    ),
    Case(
        "max_files_text",
        ev("good", extra=["--max-files", "all"]),
        Error("--max-files: 'all' is not an integer"),
    ),
    Case(
        "plots_negative", ev("good", extra=["--plots=-1"]), Error("--plots: -1")
    ),
    Case(
        "plots_fraction",
        ev("good", extra=["--plots", "1.5"]),
        Error("--plots: '1.5' is not an integer"),
    ),
    Case(
        "evaluate_pesq_not_installed",
        ev("good"),
        Error("pesq: the pesq package is not installed", "or pass --no-pesq"),
        setup=lambda ws, d, mp: mp.setattr(
            "gmsep.evaluation.metrics.importlib.util.find_spec",
            lambda name: None if name == "pesq" else object(),
        ),
    ),
    Case(
        "evaluate_no_pesq_with_a_value",
        ev("good", extra=["--no-pesq=yes"]),
        Error("--no-pesq: ignored explicit argument 'yes'"),
    ),
    Case(
        "evaluate_chunk_inf",
        ev("good", extra=["--chunk-seconds", "inf"]),
        Error("--chunk-seconds: 'inf'"),
    ),
    # -- export ----------------------------------------------------------------------------
    Case(
        "export_into_current_folder",
        exp(out=lambda ws, d: ".", extra=["--overwrite"]),
        Error(".: is the current folder"),
        setup=into_earlier_export,
    ),
    Case(
        "export_into_parent_of_current_folder",
        exp(out=lambda ws, d: "..", extra=["--overwrite"]),
        Error("..: is the current folder or above it"),
        setup=into_earlier_export,
    ),
    Case(
        "export_into_the_experiment",
        exp(out=lambda ws, d: ws.experiment, extra=["--overwrite"]),
        Error("holds the experiment being exported"),
    ),
    Case(
        "export_above_the_experiment",
        exp(out=lambda ws, d: ws.experiment.parent, extra=["--overwrite"]),
        Error("holds the experiment being exported"),
    ),
    Case(
        "export_onnx_over_user_files",
        exp(out=lambda ws, d: ws.user_folder, extra=["--overwrite", "--onnx"]),
        Error("user_folder: not a pretrained folder"),
    ),
    Case(
        "export_over_user_files",
        exp(out=lambda ws, d: ws.user_folder, extra=["--overwrite"]),
        Error("user_folder: not a pretrained folder"),
    ),
    Case(
        "export_over_export_with_user_file",
        exp(extra=["--overwrite"]),
        Error("holds files an export does not write (my_results.csv)"),
        setup=earlier_export_and_mine,
    ),
    Case(
        "export_over_export_no_overwrite",
        exp(),
        Error("pretrained: folder is not empty", "--overwrite"),
        setup=earlier_export,
    ),
    Case(
        "export_out_is_a_file",
        exp(out=lambda ws, d: ws.notes),
        Error("notes.txt: --out exists and is not a folder"),
    ),
    Case(
        "export_out_under_a_file",
        exp(out=lambda ws, d: ws.notes / "pretrained"),
        Error("lies under"),
    ),
    Case(
        "export_corrupt_checkpoint",
        exp(lambda ws: ws.experiments["corrupt"]),
        Error(
            "exp_corrupt/save/CKPT+", "masknet.ckpt: not a readable checkpoint"
        ),
    ),
    Case(
        "export_corrupt_checkpoint_meta",
        exp(lambda ws: ws.experiments["bad_meta"]),
        Error("CKPT.yaml is not valid YAML", 'CKPT.yaml", line 2'),
    ),
    Case(
        "export_missing_experiment",
        exp(lambda ws: ws.root / "nothing"),
        Error("nothing: experiment folder not found"),
    ),
    Case(
        "export_without_hparams",
        exp(lambda ws: ws.experiments["no_hparams"]),
        Error("hyperparams.yaml: not found"),
    ),
    Case(
        "export_invalid_hparams",
        exp(lambda ws: ws.experiments["yaml"]),
        Error("hyperparams.yaml: invalid YAML"),
    ),
    Case(
        "export_without_save",
        exp(lambda ws: ws.experiments["no_save"]),
        Error("save: checkpoint folder not found"),
    ),
    Case(
        "export_without_checkpoint",
        exp(lambda ws: ws.experiments["empty_save"]),
        Error("no CKPT+* folder"),
    ),
    Case(
        "export_legacy_checkpoint",
        exp(lambda ws: ws.experiments["legacy"]),
        Error("separator.ckpt", "upgrade-checkpoints"),
    ),
    Case(
        "upgrade_corrupt_legacy_checkpoint",
        lambda ws, d: [
            "upgrade-checkpoints",
            ws.experiments["legacy"] / "save",
        ],
        Error("separator.ckpt: not a readable checkpoint"),
    ),
    Case(
        "export_over_earlier_export",
        exp(extra=["--overwrite"]),
        Works(export_replaced),
        setup=earlier_export,
        replaced=lambda ws, d: list((d / "pretrained").iterdir()),
    ),
]


@pytest.mark.parametrize("case", CLI_CASES)
def test_gmsep_command(
    case, ws, tmp_path, capsys, caplog, monkeypatch, one_thread
):
    if case.setup is not None:
        case.setup(ws, tmp_path, monkeypatch)
    before = checksums(ws.root, tmp_path)
    replaced = set(case.replaced(ws, tmp_path)) if case.replaced else set()
    code = main([str(arg) for arg in case.argv(ws, tmp_path)])
    out, err = capsys.readouterr()
    case.expect.check(code, out, err, ws, tmp_path, caplog)
    after = checksums(ws.root, tmp_path)
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    assert set(changed) <= replaced, changed
    new = sorted(set(after) - set(before))
    assert not [p for p in new if p.name.startswith(".")], new  # no leftovers
    if isinstance(case.expect, Error):
        assert not new, new


def test_debug_shows_the_traceback(ws, tmp_path):
    argv = ["separate", str(ws.audio / "nan.wav"), "--model", str(ws.model)]
    with pytest.raises(DataError, match="nan.wav: 3 of 2000"):
        main([*argv, "--out", str(tmp_path), "--debug"])
    with pytest.raises(DataError, match="nan.wav"):
        main(["--debug", *argv, "--out", str(tmp_path)])


# -- the Python interface ----------------------------------------------------------


def _savedir_is_a_file(model, ws):
    model.separate_file(ws.audio / "good.wav", savedir=ws.notes)


PYTHON_CASES = [
    # name, call(model, ws), error class, message
    (
        "numpy_int16",
        lambda m, ws: m.separate_batch(np.zeros((1, FRAMES), np.int16)),
        TypeError,
        "expected floating-point samples in .-1, 1., got int16",
    ),
    (
        "list",
        lambda m, ws: m.separate_batch([[0.0] * 100]),
        TypeError,
        r"expected a torch.Tensor or numpy.ndarray of shape \[batch, time\] "
        r"or \[time\], got builtins.list",
    ),
    (
        "three_dimensions",
        lambda m, ws: m.separate_batch(torch.zeros(1, 1, FRAMES)),
        ValueError,
        r"shape \[batch, time\] or \[time\], got \(1, 1, 2000\)",
    ),
    (
        "nan_tensor",
        lambda m, ws: m.separate_batch(torch.full((1, 100), float("nan"))),
        ValueError,
        "100 of 100 samples of the mixtures are not finite",
    ),
    (
        "nan_array",
        lambda m, ws: m.enhance_batch(np.full(100, np.inf)),
        ValueError,
        "100 of 100 samples of the mixtures are not finite",
    ),
    (
        "int16_tensor",
        lambda m, ws: m.separate_batch(torch.zeros(1, 100, dtype=torch.int16)),
        TypeError,
        "expected floating-point samples",
    ),
    (
        "empty_tensor",
        lambda m, ws: m.separate_batch(torch.zeros(1, 0)),
        ValueError,
        "T = 0",
    ),
    (
        "empty_array",
        lambda m, ws: m.separate_batch(np.zeros(0)),
        ValueError,
        "T = 0",
    ),
    (
        "enhance_list",
        lambda m, ws: m.enhance_batch([0.0] * FRAMES),
        TypeError,
        "torch.Tensor or numpy.ndarray",
    ),
    (
        "sample_rate_500",
        lambda m, ws: m.separate_batch(np.zeros(FRAMES), sample_rate=500),
        ValueError,
        "sample_rate=500: expected a whole number of Hz, at least 1000",
    ),
    (
        "sample_rate_fraction",
        lambda m, ws: m.separate_batch(np.zeros(FRAMES), sample_rate=8000.5),
        ValueError,
        "sample_rate=8000.5: expected a whole number",
    ),
    (
        "sample_rate_nan",
        lambda m, ws: m.separate_long(np.zeros(FRAMES), sample_rate=np.nan),
        ValueError,
        "sample_rate=nan",
    ),
    (
        "sample_rate_text",
        lambda m, ws: m.enhance_batch(np.zeros(FRAMES), sample_rate="16k"),
        TypeError,
        "sample_rate: expected a number of Hz, got str '16k'",
    ),
    (
        "chunk_inf",
        lambda m, ws: m.separate_long(
            torch.zeros(1, 100), chunk_seconds=float("inf")
        ),
        ValueError,
        "chunk_seconds=inf: expected a finite number",
    ),
    (
        "overlap_nan",
        lambda m, ws: m.separate_long(
            torch.zeros(1, 100), overlap_seconds=float("nan")
        ),
        ValueError,
        "overlap_seconds=nan",
    ),
    (
        "chunk_text",
        lambda m, ws: m.separate_long(torch.zeros(1, 100), chunk_seconds="8"),
        TypeError,
        "chunk_seconds: expected a number of seconds, got str",
    ),
    (
        "file_nan",
        lambda m, ws: m.separate_file(ws.audio / "nan.wav"),
        DataError,
        "nan.wav: 3 of 2000 samples are not finite",
    ),
    (
        "file_truncated",
        lambda m, ws: m.separate_file(ws.audio / "trunc.wav"),
        DataError,
        "trunc.wav: truncated",
    ),
    (
        "file_10_ms",
        lambda m, ws: m.enhance_file(ws.audio / "ms10.wav"),
        DataError,
        "ms10.wav: 80 frames",
    ),
    (
        "file_missing",
        lambda m, ws: m.separate_file(ws.audio / "missing.wav"),
        DataError,
        "missing.wav: file not found",
    ),
    (
        "savedir_is_a_file",
        _savedir_is_a_file,
        OutputError,
        "notes.txt: savedir exists and is not a folder",
    ),
    (
        "normalize_unknown",
        lambda m, ws: m.separate_file(ws.audio / "good.wav", normalize="rms"),
        ValueError,
        "normalize='rms': expected one of peak, loudness, none",
    ),
    (
        "subtype_unknown",
        lambda m, ws: m.enhance_file(ws.audio / "good.wav", subtype="MP3"),
        ValueError,
        "subtype='MP3': expected one of PCM_16, PCM_24, FLOAT",
    ),
    (
        "folder_not_local",
        lambda m, ws: NoiseRobustSeparation.from_hparams(
            source="no/such/model"
        ),
        PretrainedFolderError,
        "no/such/model: no such folder",
    ),
    (
        "folder_truncated_ckpt",
        lambda m, ws: NoiseRobustSeparation.from_hparams(
            source=ws.models["truncated"]
        ),
        PretrainedFolderError,
        "masknet.ckpt: not a readable checkpoint",
    ),
]


@pytest.mark.parametrize(
    "call, error, match",
    [pytest.param(*case[1:], id=case[0]) for case in PYTHON_CASES],
)
def test_python_interface(call, error, match, model, ws, one_thread):
    before = checksums(ws.root)
    with pytest.raises(error, match=match):
        call(model, ws)
    assert issubclass(error, (ValueError, TypeError))
    assert checksums(ws.root) == before


def test_python_interface_keeps_lengths_through_resampling(
    model, ws, one_thread
):
    """Documented: back at the file's rate, exactly the file's frames; at
    the model's rate, ceil(T x model rate / file rate); tensors shorter
    than the encoder's kernel are padded and cropped back."""
    for name, frames in (
        ("k44.wav", 11025),
        ("k16.wav", 4000),
        ("k4.wav", 1000),
    ):
        path = ws.audio / name
        back = model.separate_file(path, resample_back=True)
        assert back.shape == (1, frames, 2)
        rate = sf.info(path).samplerate
        at_model_rate = model.separate_file(path)
        assert at_model_rate.shape[1] == -(-frames * RATE // rate)
    assert model.separate_batch(torch.zeros(1, 3)).shape == (1, 3, 2)
    baseline = NoiseRobustSeparation.from_hparams(source=ws.baseline)
    with pytest.raises(ValueError, match="no enhancer"):
        baseline.enhance_batch(torch.zeros(1, 100))


# -- train.py ----------------------------------------------------------------------------

DEMO = f"{REPO}/hparams/demo.yaml"

TRAIN_CASES = [
    # name, extra arguments (after the prepared data's), message
    ("num_spks", ["--num_spks=3"], "num_spks: 3, but"),
    ("given_twice", ["--lr=0.1", "--lr=0.2"], "lr: given more than once"),
    ("unknown_setting", ["--d_modle=64"], "d_modle: not a setting of"),
    (
        "lr_text",
        ["--lr=abc"],
        "lr: 'abc' is not a number (the default is 0.00015)",
    ),
    ("lr_nan", ["--lr=.nan"], "lr: nan is not a finite number"),
    ("lr_inf", ["--lr=.inf"], "lr: inf is not a finite number"),
    ("lr_inf_word", ["--lr=inf"], "lr: 'inf' is not a number"),
    ("lr_negative", ["--lr=-0.1"], "lr: -0.1, expected a positive value"),
    ("epochs_fraction", ["--N_epochs=2.5"], "N_epochs: 2.5 is not an integer"),
    (
        "batch_size_zero",
        ["--batch_size=0"],
        "batch_size: 0, expected a positive",
    ),
    (
        "workers_negative",
        ["--num_workers=-1"],
        "num_workers: -1, expected 0 or more",
    ),
    (
        "switch_text",
        ["--use_speedperturb=maybe"],
        "'maybe' is not true or false",
    ),
    (
        "test_pesq_text",
        ["--test_pesq=maybe"],
        "test_pesq: 'maybe' is not true or false",
    ),
    ("gm_mode", ["--gm_mode=pcgrad"], "gm_mode: 'pcgrad' is not one of"),
    ("data_folder", ["--data_folder=/no/such"], "data_folder: /no/such is not"),
    (
        "fp16_on_cpu",
        ["--precision=fp16", "--device=cpu"],
        "precision: fp16 needs",
    ),
    (
        "missing_csv",
        ["--valid_data=/no/valid.csv"],
        "/no/valid.csv: CSV not found",
    ),
    (
        "run_option_text",
        ["--grad_accumulation_factor=abc"],
        "--grad_accumulation_factor: invalid int value: 'abc'",
    ),
    (
        "device_unknown",
        ["--device=gpu7"],
        "device: 'gpu7' is not a torch device",
    ),
    ("missing_audio", ["--test_data=GONE"], "gone.wav", 2),
    ("truncated_audio", ["--test_data=TRUNC"], "trunc.wav: truncated", 2),
]


def _train(ws, output_folder, extra, capsys, hparams_file=DEMO):
    """train.py on the prepared data; extra `--key=value` replace its
    arguments, other extra arguments are added."""
    settings = {**ws.train_args, "output_folder": output_folder}
    added = []
    for arg in extra:
        for name in ("TRUNC", "GONE"):
            path = ws.root / "train_data" / f"{name.lower()}.csv"
            arg = arg.replace(name, str(path))
        key, _, value = arg[2:].partition("=")
        if key in settings:
            settings[key] = value
        else:
            added.append(arg)
    argv = [f"--{key}={value}" for key, value in settings.items()]
    code = train.run([hparams_file, *argv, *added])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message, lines",
    [
        pytest.param(*case[1:], *[1][len(case) - 3 :], id=case[0])
        for case in TRAIN_CASES
    ],
)
def test_train_py(extra, message, lines, ws, capsys, one_thread):
    """The experiment folder of an earlier run is left as it was: nothing
    is written into it before every check passed. A CSV's problems are
    one line for the CSV, then one per file."""
    before = checksums(ws.root)
    code, err = _train(ws, ws.trained, extra, capsys)
    Error(message, lines=lines).check(code, "", err, ws, None, None)
    assert checksums(ws.root) == before
    assert sorted(p.name for p in ws.trained.iterdir()) == ["hyperparams.yaml"]


def test_train_py_files_and_folders(ws, tmp_path, capsys, one_thread):
    code, err = _train(ws, ws.trained, [], capsys, f"{REPO}/hparams/none.yaml")
    Error("none.yaml: experiment file not found").check(
        code, "", err, ws, None, None
    )
    (tmp_path / "file").write_text("mine\n")
    code, err = _train(ws, tmp_path / "file" / "exp", [], capsys)
    Error("output_folder lies under").check(code, "", err, ws, None, None)
    # a new experiment folder that fails a check is not left behind
    code, err = _train(ws, tmp_path / "new", ["--num_spks=3"], capsys)
    Error("num_spks: 3").check(code, "", err, ws, None, None)
    assert not (tmp_path / "new").exists()
    # a trained experiment that a failing run was pointed at still exports
    trained = shutil.copytree(ws.experiment, tmp_path / "trained")
    before = checksums(trained)
    for wrong in ("--num_spks=3", "--sample_rate=16000", "--lr=abc"):
        code, err = _train(ws, trained, [wrong], capsys)
        assert code == 2 and "Traceback" not in err
    assert checksums(trained) == before
    assert main(["export", str(trained), "--out", str(tmp_path / "out")]) == 0
    # one line per file that is not usable, after the CSV's
    code, err = _train(ws, ws.trained, ["--sample_rate=16000"], capsys)
    Error(
        "train_data.csv: 5 listed audio file(s) are not usable",
        "mix.wav: sample rate 8000 Hz, expected 16000 Hz",
        lines=6,
    ).check(code, "", err, ws, None, None)
    assert sorted(p.name for p in ws.trained.iterdir()) == ["hyperparams.yaml"]
    with pytest.raises(ConfigError, match="lr: 'abc'"):
        train.run([DEMO, "--lr=abc", "--debug"])


def test_the_suite_covers_every_outcome():
    kinds = Counter(case.values[0].expect.kind for case in CLI_CASES)
    kinds["Python ValueError / TypeError"] = len(PYTHON_CASES)
    kinds["clear error"] += len(TRAIN_CASES)
    assert kinds["clear error"] >= 90 and kinds["documented behaviour"] >= 15
