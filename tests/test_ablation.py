"""Tests of the ablation command (gmsep.ablation): the ablation file's
checks, the paired statistics, the runs' identity and lock, and a real tiny
ablation trained, resumed and reported end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from gmsep.ablation.__main__ import Lock, run
from gmsep.ablation.runs import Run, check_identity, read_epochs
from gmsep.ablation.spec import AblationError, Variant, load_spec
from gmsep.ablation.statistics import (
    mean_sd,
    paired_bootstrap,
    paired_differences,
)
from tiny_config import REPO, TINY_MODEL

HPARAMS = os.path.join(REPO, "hparams")
TINY = {**TINY_MODEL, "N_epochs": 1, "batch_size": 2}


def write_spec(folder, variants=None, **entries):
    """An ablation file of the demo recipe at tiny sizes."""
    spec = {
        "hparams": os.path.join(HPARAMS, "demo.yaml"),
        "reference": "sepformer",
        "seeds": [1],
        "settings": dict(TINY),
        "variants": variants
        or [
            {
                "name": "sepformer",
                "hparams": os.path.join(HPARAMS, "demo-sepformer.yaml"),
            },
            {"name": "project", "settings": {"gm_mode": "project"}},
        ],
        **entries,
    }
    path = folder / "ablation.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def test_spec_loads_variants_with_common_and_own_settings(tmp_path):
    spec = load_spec(write_spec(tmp_path, seeds=[3, 1]))
    assert [v.name for v in spec.variants] == ["sepformer", "project"]
    assert spec.seeds == (3, 1)
    project = spec.variants[1]
    assert project.hparams == os.path.join(HPARAMS, "demo.yaml")
    assert project.settings == {**TINY, "gm_mode": "project"}
    assert project.overrides()[-2:] == ["--gm_mode", "project"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seeds": []}, "seeds: expected a list of distinct integers"),
        ({"seeds": [1, 1]}, "seeds: expected a list of distinct integers"),
        ({"reference": "nope"}, "reference 'nope' is not a variant"),
        ({"settings": {"seed": 3}}, "seed is set by the ablation"),
        ({"settings": {"output_folder": "x"}}, "output_folder is set by"),
        ({"sizes": 1}, "unknown entries ['sizes']"),
        ({"variants": []}, "variants: expected a non-empty list"),
        ({"variants": [{"name": "a b"}]}, "name 'a b': letters"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "named twice: ['a']"),
        (
            {"variants": [{"name": "a", "hparams": "none.yaml"}]},
            "none.yaml not found",
        ),
        ({"variants": [{"name": "a", "gm": 1}]}, "unknown entries ['gm']"),
        (
            {"variants": [{"name": "a", "settings": {"lr": [1]}}]},
            "lr: expected a single value",
        ),
    ],
)
def test_a_bad_ablation_file_is_refused_by_name(tmp_path, change, message):
    variants = change.pop("variants", None)
    path = write_spec(tmp_path, variants=variants, **change)
    if variants == []:  # write_spec's default replaces an empty list
        spec = json.loads(path.read_text())
        spec["variants"] = []
        path.write_text(json.dumps(spec))
    with pytest.raises(AblationError, match=None) as error:
        load_spec(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_selecting_variants_keeps_the_reference(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    assert [v.name for v in spec.select(["project"]).variants] == [
        "sepformer",
        "project",
    ]
    with pytest.raises(AblationError, match="--variants: nope not in"):
        spec.select(["nope"])


def test_mean_and_standard_deviation_over_seeds():
    assert mean_sd([2.0]) == (2.0, 0.0)
    mean, sd = mean_sd([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3) and sd == pytest.approx(
        1.5275, abs=1e-4
    )


def results(values):
    """seed -> utterance -> {"m": value}."""
    return {
        seed: {f"u{i}": {"m": v} for i, v in enumerate(row)}
        for seed, row in values.items()
    }


def test_differences_are_paired_by_seed_and_utterance():
    variant = results({1: [3.0, 1.0], 2: [2.0, 2.0]})
    reference = results({1: [1.0, 1.0], 2: [1.0, 3.0]})
    d = paired_differences(variant, reference, "m")
    assert d.tolist() == [[2.0, 0.0], [1.0, -1.0]]
    with pytest.raises(ValueError, match="paired over seeds"):
        paired_differences(variant, results({1: [1.0, 1.0]}), "m")
    with pytest.raises(ValueError, match="different utterances"):
        paired_differences(variant, results({1: [1.0], 2: [1.0]}), "m")


def test_bootstrap_interval_brackets_a_true_difference_and_zero_for_none():
    rng = np.random.default_rng(1)
    shifted = paired_bootstrap(0.5 + rng.normal(0, 1, (3, 400)))
    low, high = shifted["ci95"]
    assert 0.3 < low < 0.5 < high < 0.7
    null = paired_bootstrap(rng.normal(0, 1, (3, 400)))
    assert null["ci95"][0] < 0 < null["ci95"][1]
    assert paired_bootstrap(np.ones((2, 5)))["ci95"] == [1.0, 1.0]
    # deterministic: the same differences give the same interval
    d = rng.normal(0, 1, (2, 50))
    assert paired_bootstrap(d) == paired_bootstrap(d)


def test_seeds_that_disagree_widen_the_interval():
    """The interval covers the training randomness, not only the choice of
    utterances: two seeds at +1 and -1 dB leave 0 inside."""
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.1, (2, 200))
    disagree = paired_bootstrap(noise + np.array([[1.0], [-0.8]]))
    assert disagree["ci95"][0] < 0 < disagree["ci95"][1]
    agree = paired_bootstrap(noise + 0.1)
    assert agree["ci95"][0] > 0


def test_epochs_are_read_from_the_train_log(tmp_path):
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    (run_folder / "train_log.txt").write_text(
        "epoch: 1, lr: 1.00e-03 - train si-snr: 5.00, seconds_per_step: 2.50e-01 - valid si-snr: 3.00\n"
        "epoch: 2, lr: 1.00e-03 - train si-snr: 2.00, seconds_per_step: 3.00e-01 - valid si-snr: -1.50\n"
        # resumed: epoch 2 again, the last one counts
        "epoch: 2, lr: 1.00e-03 - train si-snr: 2.00, seconds_per_step: 3.00e-01 - valid si-snr: -2.00\n"
        "Epoch loaded: 2 - test si-snr: -2.10, sdr_i: 3.00\n"
    )
    epochs = read_epochs(Run(None, 1, run_folder, "/data"))
    assert epochs == [
        {"epoch": 1, "valid_si_snr": -3.0, "seconds_per_step": 0.25},
        {"epoch": 2, "valid_si_snr": 2.0, "seconds_per_step": 0.3},
    ]


def test_a_folder_holding_another_run_is_refused(tmp_path):
    variant = Variant(
        "project", os.path.join(HPARAMS, "demo.yaml"), {"se_weight": 0.1}
    )
    run_folder = tmp_path / "project" / "seed-1"
    first = Run(variant, 1, run_folder, "/data")
    run_folder.mkdir(parents=True)
    (run_folder / "run.json").write_text(json.dumps(first.identity()))
    check_identity(first)  # the same run: resumed
    other = Variant("project", variant.hparams, {"se_weight": 0.2})
    with pytest.raises(AblationError, match="holds a run with other settings"):
        check_identity(Run(other, 1, run_folder, "/data"))
    with pytest.raises(AblationError, match="other data_folder"):
        check_identity(Run(variant, 1, run_folder, "/other"))
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(AblationError, match="not a run of an ablation"):
        check_identity(Run(variant, 1, stranger, "/data"))
    assert (stranger / "notes.txt").read_text() == "mine"


def test_the_lock_refuses_a_second_ablation_and_takes_over_a_stale_one(
    tmp_path,
):
    with Lock(tmp_path):
        with pytest.raises(AblationError, match="another ablation"):
            with Lock(tmp_path):
                pass
    assert not (tmp_path / "ablation.lock").exists()
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    (tmp_path / "ablation.lock").write_text(finished.stdout)
    with Lock(tmp_path):
        assert (tmp_path / "ablation.lock").read_text().strip() == str(
            os.getpid()
        )


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            ["--data_folder", "/no/such/folder"],
            "--data_folder /no/such/folder: not a folder",
        ),
        (["--variants", "nope"], "--variants: nope not in"),
        (["--set", "lr"], "--set lr: expected KEY=VALUE"),
        (["--set", "seed=3"], "--set seed: set by the ablation"),
        (
            ["--set", "gm_mode=pcgrad"],
            "variant sepformer: gm_mode: 'pcgrad' is not one of",
        ),
        (
            ["--set", "no_such_setting=1"],
            "variant sepformer: no_such_setting: not a setting",
        ),
    ],
)
def test_bad_arguments_are_one_line_before_any_training(
    tmp_path, capsys, make_librimix_tree, arguments, message
):
    make_librimix_tree(tmp_path / "data", splits=("train-360", "dev", "test"))
    spec = write_spec(tmp_path)
    argv = [
        str(spec),
        "--data_folder",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "out"),
    ]
    code = run(argv + arguments)
    error = capsys.readouterr().err
    assert code == 2, error
    assert message in error and len(error.strip().splitlines()) == 1, error
    assert not (tmp_path / "out" / "runs").exists()


def test_variants_that_would_train_for_other_steps_are_refused(
    tmp_path, capsys, make_librimix_tree
):
    make_librimix_tree(tmp_path / "data", splits=("train-360", "dev", "test"))
    spec = write_spec(
        tmp_path,
        variants=[
            {
                "name": "sepformer",
                "hparams": os.path.join(HPARAMS, "demo-sepformer.yaml"),
            },
            {"name": "longer", "settings": {"N_epochs": 2}},
        ],
    )
    code = run(
        [
            str(spec),
            "--data_folder",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "variant longer: trains with" in capsys.readouterr().err


def test_a_tiny_ablation_trains_tests_reports_and_resumes(
    tmp_path, make_librimix_tree
):
    """Two variants, one seed, real train.py runs; then the same command
    again trains nothing and reports the same figures."""
    make_librimix_tree(
        tmp_path / "data", splits=("train-360", "dev", "test"), n_mixtures=4
    )
    spec = write_spec(tmp_path)
    command = [
        sys.executable,
        "-m",
        "gmsep.ablation",
        str(spec),
        "--data_folder",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "out"),
        "--jobs",
        "2",
        "--threads",
        "1",
    ]
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.path.join(REPO, "modules")
    )
    first = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 runs, 0 finished, 2 to train" in first.stdout
    out = tmp_path / "out"
    summary = json.loads((out / "ablation.json").read_text())
    assert summary["seeds"] == [1] and summary["test_utterances"] == 4
    sepformer, project = summary["variants"]
    assert sepformer["difference"] is None
    assert project["parameters"] > sepformer["parameters"]
    for metric in ("si-snr_i", "sdr_i"):
        low, high = project["difference"][metric]["ci95"]
        assert low <= project["difference"][metric]["mean"] <= high
        assert project[metric]["per_seed"]["1"] == pytest.approx(
            project[metric]["mean"]
        )
    assert len(project["valid_si_snr"]["1"]) == 1
    assert project["seconds_per_step"] > 0
    markdown = (out / "ablation.md").read_text()
    assert "| project |" in markdown and "(reference)" in markdown
    assert (out / "valid_si_snr.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "runs" / "ablation.lock").exists()

    second = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 runs, 2 finished, 0 to train" in second.stdout
    again = json.loads((out / "ablation.json").read_text())
    assert again["variants"] == summary["variants"]
