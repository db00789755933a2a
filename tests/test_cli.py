"""The gmsep command end to end on a tiny model: separate, evaluate, export,
and the one-line errors (exit code 2) for every kind of user mistake."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from gmsep import __version__
from gmsep.cli import (
    HELP_BACKENDS,
    HELP_CHUNK_SECONDS,
    HELP_OVERLAP_SECONDS,
    HELP_QUANTIZE,
    build_parser,
    main,
)
from gmsep.data.audio import NORMALIZE_MODES, OUTPUT_SUBTYPES
from gmsep.inference.chunking import (
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_OVERLAP_SECONDS,
)
from gmsep.inference.export import export_pretrained
from gmsep.inference.pretrained import BACKENDS
from gmsep.inference.quantize import QUANTIZE
from tiny_config import REPO, make_experiment


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """An experiment, its exported model, and input audio."""
    root = tmp_path_factory.mktemp("cli")
    exp_dir, _ = make_experiment(root)
    model = export_pretrained(exp_dir, root / "pretrained")
    rng = np.random.default_rng(0)
    inputs = root / "inputs"
    inputs.mkdir()
    sf.write(inputs / "a16k.wav", rng.uniform(-0.5, 0.5, 8000), 16000)
    sf.write(inputs / "b_stereo.wav", rng.uniform(-0.5, 0.5, (6000, 2)), 8000)
    return {
        "root": root,
        "experiment": exp_dir,
        "model": model,
        "inputs": inputs,
    }


def run(argv, capsys):
    """Runs the command in-process: (exit code, stdout, stderr)."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(code, err, *expected):
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("gmsep ")]
    assert len(lines) == 1, err
    for text in expected:
        assert text in lines[0], lines[0]


def test_separate_writes_one_file_per_speaker(workspace, tmp_path, capsys):
    inputs = workspace["inputs"]
    argv = ["separate", inputs / "a16k.wav", inputs / "b_stereo.wav"]
    argv += ["--model", workspace["model"], "--out", tmp_path, "--enhanced"]
    code, out, _ = run(
        argv + ["--chunk-seconds", "0.5", "--overlap-seconds", "0.1"], capsys
    )
    assert code == 0, out
    for stem, rate, frames in (("a16k", 16000, 8000), ("b_stereo", 8000, 6000)):
        for suffix in ("_s1", "_s2", "_enhanced"):
            audio, file_rate = sf.read(tmp_path / f"{stem}{suffix}.wav")
            assert file_rate == rate and audio.shape == (frames,)
            assert np.abs(audio).max() > 0
    assert len(list(tmp_path.iterdir())) == 6

    # the outputs exist now: skipped without --overwrite
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert "2 recording(s): 0 done, 2 skipped, 0 failed" in out
    code, out, _ = run(argv + ["--overwrite"], capsys)
    assert code == 0
    assert "2 recording(s): 2 done, 0 skipped, 0 failed" in out


def test_evaluate_writes_metrics_summary_and_pictures(
    workspace, tmp_path, capsys
):
    rng = np.random.default_rng(1)
    rows = []
    for i in range(2):
        sources = rng.uniform(-0.3, 0.3, (2, 4000 + 800 * i))
        noise = 0.05 * rng.standard_normal(sources.shape[1])
        paths = {}
        for name, signal in (
            ("s1", sources[0]),
            ("s2", sources[1]),
            ("noise", noise),
            ("clean", sources.sum(0)),
            ("mix", sources.sum(0) + noise),
        ):
            paths[name] = tmp_path / f"{name}_{i}.wav"
            sf.write(paths[name], signal, 8000)
        rows.append({"ID": f"utt{i}", "duration": sources.shape[1] / 8000})
        rows[-1].update(
            {f"{name}_wav": str(path) for name, path in paths.items()}
        )
    csv_path = tmp_path / "test.csv"
    with open(csv_path, "w", newline="") as fout:
        writer = csv.DictWriter(fout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    out = tmp_path / "eval"
    argv = ["evaluate", "--model", workspace["model"], "--csv", csv_path]
    code, stdout, _ = run(argv + ["--out", out, "--plots", "1"], capsys)
    assert code == 0, stdout
    with open(out / "metrics.csv") as fin:
        metrics = list(csv.DictReader(fin))
    assert [row["ID"] for row in metrics] == ["utt0", "utt1"]
    assert {"si-snr", "si-snr_i", "sdr", "sdr_i"} <= set(metrics[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["count"] == 2
    mean = sum(float(row["si-snr_i"]) for row in metrics) / 2
    assert summary["means"]["si-snr_i"] == pytest.approx(mean)
    assert (out / "spectrograms" / "utt0.png").stat().st_size > 1000
    assert not (out / "spectrograms" / "utt1.png").exists()
    assert (out / "si-snr_i_histogram.png").stat().st_size > 1000

    code, _, err = run(argv + ["--out", out], capsys)
    assert_user_error(code, err, "metrics.csv", "--overwrite")
    code, _, _ = run(
        argv + ["--out", out, "--max-files", "1", "--overwrite"], capsys
    )
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["count"] == 1

    # evaluation CSV problems
    no_s2 = tmp_path / "no_s2.csv"
    no_s2.write_text("ID,duration,mix_wav,s1_wav\nx,1,a.wav,b.wav\n")
    code, _, err = run(
        [
            "evaluate",
            "--model",
            workspace["model"],
            "--csv",
            no_s2,
            "--out",
            out,
        ],
        capsys,
    )
    assert_user_error(code, err, "no_s2.csv", "s2_wav")
    missing_audio = tmp_path / "missing_audio.csv"
    missing_audio.write_text(
        csv_path.read_text().replace(
            str(tmp_path / "s2_0.wav"), str(tmp_path / "gone.wav")
        )
    )
    code, _, err = run(
        [
            "evaluate",
            "--model",
            workspace["model"],
            "--csv",
            missing_audio,
            "--out",
            out,
            "--overwrite",
        ],
        capsys,
    )
    assert_user_error(code, err, "gone.wav", "not found")
    code, _, err = run(
        [
            "evaluate",
            "--model",
            workspace["model"],
            "--csv",
            tmp_path / "none.csv",
            "--out",
            out,
        ],
        capsys,
    )
    assert_user_error(code, err, "none.csv")


@pytest.fixture
def bad_inputs(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 8000)
    return {
        "missing": tmp_path / "missing.wav",
        "corrupt": corrupt,
        "empty": empty,
    }


@pytest.mark.parametrize(
    "kind, expected",
    [("missing", "file not found"), ("corrupt", "corrupt"), ("empty", "empty")],
)
def test_separate_bad_input_audio(
    workspace, bad_inputs, tmp_path, capsys, kind, expected
):
    argv = [
        "separate",
        bad_inputs[kind],
        "--model",
        workspace["model"],
        "--out",
        tmp_path / "o",
    ]
    code, _, err = run(argv, capsys)
    assert_user_error(code, err, bad_inputs[kind].name, expected)


def test_separate_bad_model_and_settings(workspace, tmp_path, capsys):
    wav = workspace["inputs"] / "a16k.wav"
    out = tmp_path / "out"

    def separate(model, *extra):
        return run(
            ["separate", wav, "--model", model, "--out", out, *extra], capsys
        )

    code, _, err = separate("speechbrain/sepformer-wham")
    assert_user_error(code, err, "speechbrain/sepformer-wham", "only local")
    broken = shutil.copytree(workspace["model"], tmp_path / "broken")
    (broken / "decoder.ckpt").unlink()
    code, _, err = separate(broken)
    assert_user_error(code, err, "decoder.ckpt", "not found")
    (broken / "hyperparams.yaml").unlink()
    code, _, err = separate(broken)
    assert_user_error(code, err, "hyperparams.yaml", "not found")
    code, _, err = separate(workspace["model"], "--overlap-seconds", "0")
    assert_user_error(code, err, "--overlap-seconds")
    other = tmp_path / "other" / "a16k.wav"
    other.parent.mkdir()
    shutil.copy(wav, other)
    code, _, err = run(
        ["separate", wav, other, "--model", workspace["model"], "--out", out],
        capsys,
    )
    assert_user_error(code, err, "several inputs are named a16k.*")
    assert not out.exists()
    # one file named twice is one recording
    code, stdout, _ = run(
        ["separate", wav, wav, "--model", workspace["model"], "--out", out],
        capsys,
    )
    assert code == 0 and "1 recording(s): 1 done" in stdout


def test_export_command(workspace, tmp_path, capsys):
    out = tmp_path / "pretrained"
    # as `make demo` calls it, in a fresh interpreter
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gmsep",
            "export",
            str(workspace["experiment"]),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "masknet.ckpt").is_file() and (out / "README.md").is_file()
    code, _, err = run(
        ["export", workspace["experiment"], "--out", out], capsys
    )
    assert_user_error(code, err, str(out), "--overwrite")
    code, _, _ = run(
        ["export", workspace["experiment"], "--out", out, "--overwrite"], capsys
    )
    assert code == 0
    code, _, err = run(
        ["export", tmp_path / "nothing", "--out", tmp_path / "x"], capsys
    )
    assert_user_error(code, err, "nothing", "experiment folder not found")


def gmsep_process(*argv):
    """The command in a fresh interpreter, as a user runs it."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(
            [f"{REPO}/modules", os.environ.get("PYTHONPATH", "")]
        ),
    }
    return subprocess.run(
        [sys.executable, "-m", "gmsep", *(str(arg) for arg in argv)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_help_and_version_import_neither_torch_nor_speechbrain():
    """They take seconds to import; --help and --version need neither."""
    code = (
        "import sys\n"
        "from gmsep.cli import main\n"
        "for argv in (['--help'], ['separate', '--help'], "
        "['evaluate', '--help'], ['--version']):\n"
        "    assert main(argv) == 0\n"
        "print(sorted({'torch', 'speechbrain', 'torchaudio', 'matplotlib'}"
        " & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": f"{REPO}/modules"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]", result.stdout


def test_version(capsys):
    assert main(["--version"]) == 0
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(
        rf"gmsep {re.escape(__version__)} \(speechbrain \S+, torch \S+\)",
        line,
    ), line


def test_help_states_the_chunking_defaults_and_choices(capsys):
    assert (HELP_CHUNK_SECONDS, HELP_OVERLAP_SECONDS) == (
        DEFAULT_CHUNK_SECONDS,
        DEFAULT_OVERLAP_SECONDS,
    )
    assert (HELP_BACKENDS, HELP_QUANTIZE) == (BACKENDS, QUANTIZE)
    parser = build_parser()
    separate = parser._subparsers._group_actions[0].choices["separate"]
    choices = {a.dest: a.choices for a in separate._actions}
    assert tuple(choices["normalize"]) == NORMALIZE_MODES
    assert tuple(choices["subtype"]) == OUTPUT_SUBTYPES
    assert main(["separate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {DEFAULT_CHUNK_SECONDS})" in text
    assert f"(default: {DEFAULT_OVERLAP_SECONDS}," in text


def stderr_lines(text):
    """stderr as a terminal shows it line by line: split at carriage
    returns and newlines, cursor movements removed."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    return [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]


def test_warnings_on_lines_of_their_own_and_quiet(workspace, tmp_path):
    inputs = workspace["inputs"]
    argv = ["separate", inputs / "a16k.wav", inputs / "b_stereo.wav"]
    argv += ["--model", workspace["model"], "--device", "cpu"]
    result = gmsep_process(*argv, "--out", tmp_path / "loud")
    assert result.returncode == 0, result.stderr
    lines = stderr_lines(result.stderr)
    warning = [line for line in lines if "averaged to mono" in line]
    # never glued to a progress bar
    assert warning == [
        f"WARNING: {inputs / 'b_stereo.wav'}: 2 channels, averaged to mono"
    ], lines
    assert any("files: 100%" in line for line in lines), lines
    # SpeechBrain's "INFO: Loading pretrained files for: ...", its
    # torchvision notice
    assert not [
        line
        for line in lines
        if not line.startswith(
            ("files:", "a16k.wav:", "b_stereo.wav:", "WARNING: ")
        )
    ], lines
    assert "2 recording(s): 2 done" in result.stdout

    result = gmsep_process(*argv, "--out", tmp_path / "quiet", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert stderr_lines(result.stderr) == warning
    assert len(list((tmp_path / "quiet").iterdir())) == 4


def test_a_warning_once_per_recording_though_read_again(
    workspace, tmp_path, capsys
):
    """--enhanced reads each recording a second time, --report once more
    for its players: the downmix warning of the stereo input is printed
    once all the same, in each command (one process runs two)."""
    inputs = workspace["inputs"]
    argv = ["separate", inputs / "b_stereo.wav", inputs / "a16k.wav"]
    argv += ["--model", workspace["model"], "--device", "cpu"]
    warning = (
        f"WARNING: {inputs / 'b_stereo.wav'}: 2 channels, averaged to mono"
    )
    for options in (["--enhanced"], ["--report"]):
        out = tmp_path / options[0].strip("-")
        result = gmsep_process(*argv, *options, "--out", out)
        assert result.returncode == 0, result.stderr
        lines = stderr_lines(result.stderr)
        assert [line for line in lines if "mono" in line] == [warning], lines
    for folder in ("both", "again"):
        code, _, err = run(
            [*argv, "--enhanced", "--report", "--out", tmp_path / folder],
            capsys,
        )
        assert code == 0, err
        lines = stderr_lines(err)
        assert [line for line in lines if "mono" in line] == [warning], lines
