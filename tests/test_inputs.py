"""Inputs as people have them: files, folders, globs and lists resolved into
recordings (gmsep.data.inputs), and `gmsep separate` / `gmsep enhance` over
them end to end on the tiny model: the input tree mirrored in --out,
complete outputs skipped, a summary per recording, a recording that fails
while it is processed failing alone."""

import re

import numpy as np
import pytest
import soundfile as sf
from gmsep.cli import main
from gmsep.data.audio import DataError
from gmsep.data.inputs import find_inputs
from gmsep.inference.export import export_pretrained
from tiny_config import make_experiment

RATE = 8000


def write(path, frames=RATE // 4, rate=RATE, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(-0.3, 0.3, frames)
    sf.write(path, noise, rate)
    return path


@pytest.fixture
def tree(tmp_path):
    """talks/{a.wav, B.FLAC, day1/c.wav, day1/notes.txt, .hidden/d.wav,
    day1/.e.wav.tmp.wav}"""
    talks = tmp_path / "talks"
    write(talks / "a.wav")
    write(talks / "B.FLAC")
    write(talks / "day1" / "c.wav")
    (talks / "day1" / "notes.txt").write_text("not audio\n")
    write(talks / ".hidden" / "d.wav")
    write(talks / "day1" / ".c_s1.wav.x1y2.wav")  # a write in progress
    return talks


def found(items):
    return [(item.path.name, str(item.stem)) for item in items]


def test_folder_recursive_by_audio_suffix(tree):
    assert found(find_inputs([tree])) == [
        ("B.FLAC", "B"),
        ("a.wav", "a"),
        ("c.wav", "day1/c"),
    ]
    # a file given by name is flat in --out, whatever its folder
    assert found(find_inputs([tree / "day1" / "c.wav"])) == [("c.wav", "c")]


def test_glob_mirrors_below_its_fixed_part(tree):
    pattern = str(tree / "**" / "*.wav")
    assert found(find_inputs([pattern])) == [
        ("a.wav", "a"),
        ("c.wav", "day1/c"),
    ]
    assert found(find_inputs([str(tree / "day1" / "*.wav")])) == [
        ("c.wav", "c")
    ]


def test_list_file_relative_to_its_folder(tree, tmp_path):
    listing = tmp_path / "todo.txt"
    listing.write_text(
        "# recordings of the first day\n"
        "\n"
        "talks/a.wav\n"
        f"  {tree / 'day1'}  \n"
        "talks/*.FLAC\n"
    )
    assert found(find_inputs([listing])) == [
        ("a.wav", "talks/a"),
        ("c.wav", "talks/day1/c"),
        ("B.FLAC", "talks/B"),
    ]


def test_each_recording_once_and_the_output_folder_left_out(tree):
    out = tree / "separated"
    write(out / "a_s1.wav")
    items = find_inputs([tree / "a.wav", tree, str(tree / "*.wav")], out)
    assert found(items) == [
        ("a.wav", "a"),
        ("B.FLAC", "B"),
        ("c.wav", "day1/c"),
    ]


@pytest.mark.parametrize(
    "spec, message",
    [
        (lambda t: t / "day1" / "empty", "empty: no audio file (.wav, .flac"),
        (lambda t: str(t / "*.mp3"), "*.mp3: the pattern matches no audio"),
        (lambda t: t / "none.txt", "none.txt: list file not found"),
    ],
)
def test_inputs_that_name_nothing(tree, spec, message):
    (tree / "day1" / "empty").mkdir()
    with pytest.raises(DataError, match=re.escape(message)):
        find_inputs([spec(tree)])


def test_list_problems_one_line_each(tree, tmp_path):
    listing = tmp_path / "todo.lst"
    listing.write_text("talks/a.wav\ntalks/gone.wav\ntalks/*.ogg\n")
    with pytest.raises(DataError) as err:
        find_inputs([listing, tmp_path / "other.list"])
    assert str(err.value).splitlines() == [
        f"{listing}, line 2: {tmp_path / 'talks' / 'gone.wav'}: file not found",
        f"{listing}, line 3: {tmp_path / 'talks' / '*.ogg'}: the pattern "
        "matches no audio file",
        f"{tmp_path / 'other.list'}: list file not found",
    ]
    (tmp_path / "comments.txt").write_text("# nothing yet\n")
    with pytest.raises(DataError, match="comments.txt: lists no input"):
        find_inputs([tmp_path / "comments.txt"])
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DataError, match="binary.txt: not a text file"):
        find_inputs([tmp_path / "binary.txt"])


# -- the command ---------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    experiment, _ = make_experiment(root)
    baseline, _ = make_experiment(root / "base", enhancer=False)
    return (
        export_pretrained(experiment, root / "pretrained"),
        export_pretrained(baseline, root / "baseline"),
    )


def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def outputs(folder):
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file()
    )


def test_separate_a_folder_mirrored_skipped_then_overwritten(
    models, tree, tmp_path, capsys, one_thread
):
    model, _ = models
    out = tmp_path / "out"
    argv = ["separate", tree, "--model", model, "--out", out]
    code, stdout, _ = run(capsys, *argv, "--enhanced")
    assert code == 0
    assert outputs(out) == [
        f"{stem}{suffix}.wav"
        for stem in ("B", "a", "day1/c")
        for suffix in ("_enhanced", "_s1", "_s2")
    ]
    lines = stdout.splitlines()
    assert lines[0].startswith(f"done     {tree / 'B.FLAC'}: 0.25 s of audio")
    assert "RTF" in lines[0]
    assert lines[-1].startswith("3 recording(s): 3 done, 0 skipped, 0 failed")
    assert lines[-1].endswith(f"outputs in {out}")
    written = {path: path.stat().st_mtime_ns for path in out.rglob("*.wav")}

    # a new recording: only it is separated
    write(tree / "day2" / "f.wav", seed=5)
    code, stdout, _ = run(capsys, *argv, "--enhanced")
    assert code == 0
    assert f"skipped  {tree / 'a.wav'}: outputs exist" in stdout
    assert stdout.splitlines()[-1].startswith(
        "4 recording(s): 1 done, 3 skipped, 0 failed"
    )
    assert {p: p.stat().st_mtime_ns for p in written} == written
    assert (out / "day2" / "f_s2.wav").is_file()

    # without --enhanced, the sources are all there: nothing to do
    code, stdout, _ = run(capsys, *argv)
    assert code == 0 and "0 done, 4 skipped" in stdout
    # --overwrite redoes them all
    code, stdout, _ = run(capsys, *argv, "--overwrite")
    assert code == 0 and "4 done, 0 skipped" in stdout
    assert (out / "a_s1.wav").stat().st_mtime_ns > written[out / "a_s1.wav"]
    assert (out / "a_enhanced.wav").stat().st_mtime_ns == written[
        out / "a_enhanced.wav"
    ]

    # an incomplete set was not written by this command: refused
    (out / "a_s2.wav").unlink()
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "a_s1.wav: exists, but not a_s2.wav" in err and "--overwrite" in err


def test_output_folder_inside_the_input_folder(
    models, tree, capsys, one_thread
):
    """Its files are never taken for recordings, on the next run either."""
    model, _ = models
    argv = ["separate", tree, "--model", model, "--out", tree / "sep"]
    assert run(capsys, *argv)[0] == 0
    code, stdout, _ = run(capsys, *argv)
    assert code == 0
    assert "3 recording(s): 0 done, 3 skipped" in stdout
    assert not list((tree / "sep").rglob("*_s1_s1.wav"))


def test_enhance_command(models, tree, tmp_path, capsys, one_thread):
    model, baseline = models
    out = tmp_path / "out"
    code, stdout, _ = run(
        capsys, "enhance", tree / "day1", "--model", model, "--out", out
    )
    assert code == 0, stdout
    assert outputs(out) == ["c_enhanced.wav"]
    enhanced, rate = sf.read(out / "c_enhanced.wav")
    assert rate == RATE and enhanced.shape == (RATE // 4,)
    code, _, err = run(
        capsys, "enhance", tree / "a.wav", "--model", baseline, "--out", out
    )
    assert code == 2 and "enhance: the model" in err and "no enhancer" in err


def corrupt_flac(path):
    """A FLAC file whose header is sound and whose audio data are not: the
    checks before the model loads read headers only."""
    write(path.with_suffix(".wav"), frames=RATE, seed=9)
    signal, _ = sf.read(path.with_suffix(".wav"))
    path.with_suffix(".wav").unlink()
    sf.write(path, signal, RATE)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 400] = b"\xff" * 400
    path.write_bytes(bytes(data))
    return path


def test_a_recording_that_fails_alone(
    models, tree, tmp_path, capsys, caplog, one_thread
):
    model, _ = models
    bad = corrupt_flac(tree / "day1" / "broken.flac")
    out = tmp_path / "out"
    argv = ["separate", tree, "--model", model, "--out", out]
    code, stdout, err = run(capsys, *argv)
    assert code == 2
    assert f"failed   {bad}: unreadable or corrupt audio file" in stdout
    assert "4 recording(s): 3 done, 0 skipped, 1 failed" in stdout
    assert f"{bad}: failed, going on with the next" in caplog.text
    errors = [line for line in err.splitlines() if "error:" in line]
    assert errors == [
        "gmsep separate: error: 1 of 4 recording(s) failed (listed above); "
        "run the same command again to retry them: the others are skipped"
    ]
    assert outputs(out) == [
        f"{stem}{suffix}.wav"
        for stem in ("B", "a", "day1/c")
        for suffix in ("_s1", "_s2")
    ]
    # again: the others are skipped, the broken one fails again
    code, stdout, _ = run(capsys, *argv, "--quiet")
    assert code == 2 and stdout == ""
    code, stdout, _ = run(capsys, *argv)
    assert "4 recording(s): 0 done, 3 skipped, 1 failed" in stdout
