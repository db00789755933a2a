"""Tests of the start-up checks (gmsep.training.config_checks, train.py): a wrong
setting stops train.py within seconds, before any data is loaded, with a
message that names the setting."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from gmsep.losses import Objective, PITNegSISNR
from gmsep.training.config_checks import (
    ConfigError,
    check_config,
    check_hparams_file,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "hparams", "demo.yaml")
PAPER = os.path.join(REPO, "hparams", "sepformer-gm-libri2mix.yaml")

# case: (hparams file, arguments, what the error message must say)
CASES = {
    "gm_mode": (DEMO, ["--gm_mode=pcgrad"], "gm_mode: 'pcgrad'"),
    "fp16_on_cpu": (DEMO, ["--precision=fp16", "--device=cpu"], "precision"),
    "placeholder": (PAPER, ["--data_folder"], "data_folder: required"),
    "no_folder": (DEMO, ["--data_folder=/no/such"], "data_folder: /no/such"),
    "two_intervals": (
        DEMO,
        ["--ckpt_interval_minutes=5", "--ckpt_interval_steps=100"],
        "ckpt_interval_minutes and ckpt_interval_steps",
    ),
    "num_spks": (DEMO, ["--num_spks=3"], "num_spks: 3, but"),
    "unknown_setting": (DEMO, ["--d_modle=64"], "d_modle: not a setting of"),
    "sample_rate": (
        DEMO,
        ["--sample_rate=16000"],
        "sample rate 8000 Hz, expected 16000 Hz (set sample_rate",
    ),
}


def start_train(hparams_file, *args, cwd):
    """Starts train.py; its stdout and stderr (where SpeechBrain's exception
    hook and Python's report the error) go to one pipe."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, os.path.join(REPO, "train.py"), hparams_file, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def error_message(output):
    """The exception's message: from the last traceback line that names an
    error to the end."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if "Error: " in line]
    return "\n".join(lines[starts[-1] :]) if starts else output[-2000:]


def write_prepared_csvs(folder, sample_rate=8000, n_spks=2):
    """Prepared train, valid and test CSVs of one short silent item each;
    returns the arguments that make train.py use them as they are."""
    columns = ["mix", *(f"s{i + 1}" for i in range(n_spks)), "noise", "clean"]
    for column in columns:
        sf.write(
            folder / f"{column}.wav",
            np.zeros(sample_rate // 10, dtype=np.int16),
            sample_rate,
        )
    header = "ID,duration," + ",".join(f"{c}_wav" for c in columns)
    row = "item,0.1," + ",".join(str(folder / f"{c}.wav") for c in columns)
    args = ["--skip_prep=True"]
    for key in ("train_data", "valid_data", "test_data"):
        (folder / f"{key}.csv").write_text(f"{header}\n{row}\n")
        args.append(f"--{key}={folder / f'{key}.csv'}")
    return args


@pytest.fixture(scope="module")
def failed_runs(tmp_path_factory):
    """Runs all cases at once (each mostly waits on its imports); returns
    case -> (exit status, output)."""
    runs = {}
    for case, (hparams_file, args, _) in CASES.items():
        folder = tmp_path_factory.mktemp(case)
        # Two-speaker 8 kHz data, read only by the cases that get past the
        # checks of the settings.
        data = write_prepared_csvs(folder)
        if "--data_folder" in args:  # left out on purpose
            args = [arg for arg in args if arg != "--data_folder"]
        elif not any(arg.startswith("--data_folder") for arg in args):
            data.append(f"--data_folder={folder}")
        runs[case] = start_train(
            hparams_file,
            *data,
            *args,
            f"--output_folder={folder / 'out'}",
            cwd=folder,
        )
    results = {}
    for case, run in runs.items():
        try:
            output, _ = run.communicate(timeout=120)
        finally:
            run.kill()
        results[case] = (run.returncode, output)
    return results


@pytest.mark.parametrize("case", CASES)
def test_a_wrong_setting_stops_train_py_naming_it(failed_runs, case):
    status, output = failed_runs[case]
    assert status == 2 and "Traceback" not in output, output
    errors = [
        line for line in output.splitlines() if "train.py: error: " in line
    ]
    assert CASES[case][2] in "\n".join(errors), output


def test_check_hparams_file_names_the_setting(tmp_path):
    hparams_file = tmp_path / "h.yaml"
    hparams_file.write_text("data_folder: !PLACEHOLDER\ngm_mode: project\n")
    with pytest.raises(ConfigError, match=r"^data_folder: required.*--data"):
        check_hparams_file(str(hparams_file), "")
    check_hparams_file(str(hparams_file), "data_folder: /data")
    with pytest.raises(ConfigError, match=r"^se_reduction: 'median' is not"):
        check_hparams_file(DEMO, "se_reduction: median")


def test_check_config_accepts_one_checkpoint_interval_only(tmp_path):
    hparams = {
        "objectives": [Objective("separation", PITNegSISNR())],
        "data_folder": str(tmp_path),
    }
    check_config(hparams, {"device": "cpu", "ckpt_interval_steps": 5})
    with pytest.raises(ConfigError, match="ckpt_interval_minutes and"):
        check_config(
            {**hparams, "ckpt_interval_minutes": 2},
            {"device": "cpu", "ckpt_interval_steps": 5},
        )


def test_check_config_refuses_accumulation_it_cannot_make_exact(tmp_path):
    """With grad_accumulation_factor > 1 every criterion must say whether it
    averages or sums over the batch (the loss scale of accumulation)."""

    class Unknown(torch.nn.Module):
        def forward(self, output, sources):
            return output.est_sources.sum()

    ok = {
        "objectives": [Objective("separation", PITNegSISNR())],
        "data_folder": str(tmp_path),
    }
    check_config(ok, {"device": "cpu", "grad_accumulation_factor": 4})
    unknown = {**ok, "objectives": [Objective("separation", Unknown())]}
    check_config(unknown, {"device": "cpu"})
    with pytest.raises(ConfigError, match="^grad_accumulation_factor: 4"):
        check_config(unknown, {"device": "cpu", "grad_accumulation_factor": 4})
    with pytest.raises(
        ConfigError, match="^grad_accumulation_factor: expected"
    ):
        check_config(ok, {"device": "cpu", "grad_accumulation_factor": 0})
