"""Tests of the experiment layout (gmsep.training.experiment): every
experiment file resolves to the values it had before the model and training
sections were split out, command-line overrides reach the section that
defines them, and the network's modules carry SpeechBrain's names."""

import json
import os

import pytest
from gmsep.inference.export import inference_hparams
from gmsep.training.brain import NoiseRobustSeparationBrain
from gmsep.training.config_checks import ConfigError, check_hparams_file
from gmsep.training.experiment import (
    included_sections,
    load_experiment,
    route_overrides,
)
from hparams_snapshot import experiment_files, resolved_values
from tiny_config import REPO, TINY_MODEL

DEMO = os.path.join(REPO, "hparams", "demo.yaml")
SNAPSHOT = os.path.join(REPO, "tests", "data", "resolved_hparams.json")
# Settings added since the description was written, at their faithful
# (paper) value, which leaves the experiment as it was.
NEW_SETTINGS = {
    "pretrained_separator": None,
    "dynamic_mixing_levels": "librimix",
    "test_pesq": True,
    "test_stoi": True,
}
# The same, for the unified network's files only.
NEW_UNIFIED_SETTINGS = {
    "se_weight_decay": "constant",
    "gm_params": "encoder_enhancer",
}


@pytest.mark.parametrize(
    "hparams_file", experiment_files(), ids=os.path.basename
)
def test_experiment_resolves_to_the_recorded_values(hparams_file):
    """The description was written from the flat files that held every
    value themselves (tests/hparams_snapshot.py)."""
    with open(SNAPSHOT, encoding="utf-8") as fin:
        recorded = json.load(fin)[os.path.basename(hparams_file)]
    resolved = resolved_values(hparams_file)
    for key, faithful in NEW_SETTINGS.items():
        assert resolved.pop(key) == faithful, key
    if "se_weight" in resolved:
        for key, faithful in NEW_UNIFIED_SETTINGS.items():
            assert resolved.pop(key) == faithful, key
    changed = {
        key
        for key in set(recorded) | set(resolved)
        if recorded.get(key) != resolved.get(key)
    }
    assert not changed, f"{hparams_file}: values changed: {sorted(changed)}"


@pytest.mark.parametrize(
    "hparams_file", experiment_files(), ids=os.path.basename
)
def test_modules_are_the_separators_parts(hparams_file, tmp_path):
    hparams, _ = load_experiment(
        hparams_file, {"data_folder": "/data", "output_folder": str(tmp_path)}
    )
    separator = hparams["separator"]
    names = ["encoder", "enhancer", "masknet", "decoder"]
    if separator.enhancer is None:
        names.remove("enhancer")
    assert list(hparams["modules"]) == names
    for name in names:
        assert hparams["modules"][name] is getattr(separator, name)
    assert hparams["model"]["separator"] is separator


def test_overrides_are_routed_to_their_section():
    routed = route_overrides(
        DEMO, "d_model: 32\nlr: 0.01\nnum_spks: 3\ngm_mode: none"
    )
    assert routed == {
        "model": {"d_model": 32},
        "training": {"lr": 0.01},
        "num_spks": 3,
        "gm_mode": "none",
    }
    assert set(included_sections(DEMO)) == {"model", "training"}


def test_overrides_change_the_built_objects(tmp_path):
    hparams, _ = load_experiment(
        DEMO,
        {
            **TINY_MODEL,
            "output_folder": str(tmp_path),
            "lr": 0.01,
            "num_spks": 3,
        },
    )
    assert hparams["encoder"].conv1d.out_channels == TINY_MODEL["N_encoder_out"]
    assert hparams["masknet"].num_spks == 3  # through the include argument
    assert hparams["separator"].num_spks == 3
    assert hparams["optimizer"].keywords["lr"] == 0.01
    assert hparams["epoch_counter"] is hparams["training"]["epoch_counter"]


def test_unknown_override_is_named():
    with pytest.raises(ConfigError, match="d_modle: not a setting of"):
        route_overrides(DEMO, {"d_modle": 4})


def test_brain_checkpoints_every_module_by_name(tmp_path):
    hparams, _ = load_experiment(
        DEMO, {**TINY_MODEL, "output_folder": str(tmp_path)}
    )
    brain = NoiseRobustSeparationBrain(
        modules=hparams["modules"],
        opt_class=hparams["optimizer"],
        hparams=hparams,
        run_opts={"device": "cpu"},
        checkpointer=hparams["checkpointer"],
    )
    assert brain.separator is hparams["separator"]
    brain.checkpointer.save_checkpoint()
    (ckpt,) = (tmp_path / "save").glob("CKPT+*")
    files = {path.name for path in ckpt.glob("*.ckpt")}
    assert {
        "encoder.ckpt",
        "enhancer.ckpt",
        "masknet.ckpt",
        "decoder.ckpt",
    } <= files
    assert {"counter.ckpt", "lr_scheduler.ckpt"} <= files
    assert "separator.ckpt" not in files


PUBLISHED = os.path.join(REPO, "hparams", "sepformer-published-libri2mix.yaml")


def test_a_derived_experiment_is_its_base_with_the_changed_settings(
    tmp_path, monkeypatch
):
    """sepformer-published-* include the paper's experiment whole: every
    value but the name and gm_mode is the paper's, and overrides reach the
    section of the included experiment that defines them."""
    assert route_overrides(
        PUBLISHED, {"lr": 0.01, "d_model": 32, "data_folder": "/data"}
    ) == {
        "experiment": {
            "training": {"lr": 0.01},
            "model": {"d_model": 32},
            "data_folder": "/data",
        }
    }
    # The file's own (relative) output folder is checked: it is created
    # under tmp_path.
    monkeypatch.chdir(tmp_path)
    hparams, _ = load_experiment(PUBLISHED, {"data_folder": "/data"})
    assert hparams["gradient_modulation"].mode == "published"
    assert hparams["output_folder"].startswith(
        "results/sepformer-published-libri2mix/"
    )
    assert hparams["epoch_counter"] is hparams["training"]["epoch_counter"]
    with pytest.raises(ConfigError, match="data_folder: required"):
        check_hparams_file(PUBLISHED, "")
    with pytest.raises(ConfigError, match="gm_mode: 'pcgrad'"):
        check_hparams_file(PUBLISHED, "data_folder: /data\ngm_mode: pcgrad")
    # the export finds the model section in the included experiment
    assert "masknet_intra:" in inference_hparams(
        PUBLISHED, {"data_folder": "/data"}
    )
