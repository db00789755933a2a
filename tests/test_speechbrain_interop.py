"""Tests of the interplay with SpeechBrain's published separators: a folder
in SpeechBrain's SepFormer layout warm-starts the network and loads as a
separator, a SepFormer-alone export loads with SpeechBrain's own interface,
and checkpoints of the one-module layout are converted by one command."""

import os

import pytest
import torch
from gmsep.cli import main
from gmsep.inference.export import export_pretrained
from gmsep.inference.pretrained import (
    NoiseRobustSeparation,
    PretrainedFolderError,
)
from gmsep.training.config_checks import ConfigError
from gmsep.training.experiment import load_experiment
from gmsep.training.legacy_checkpoints import LegacyCheckpointError
from gmsep.training.warm_start import load_separator, separator_pretrainer
from hyperpyyaml import load_hyperpyyaml
from speechbrain.inference.separation import SepformerSeparation
from tiny_config import REPO, TINY_MODEL, make_experiment

DEMO = os.path.join(REPO, "hparams", "demo.yaml")

# hyperparams.yaml as SpeechBrain publishes it for sepformer-wham (names,
# modules and a pretrainer without paths), at the tiny sizes of the tests.
SPEECHBRAIN_SEPFORMER = """
sample_rate: 8000
num_spks: NUM_SPKS

Encoder: !new:speechbrain.lobes.models.dual_path.Encoder
    kernel_size: 16
    out_channels: 16

SBtfintra: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: 16
    nhead: 2
    d_ffn: 32
    dropout: 0
    use_positional_encoding: True
    norm_before: True

SBtfinter: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: 16
    nhead: 2
    d_ffn: 32
    dropout: 0
    use_positional_encoding: True
    norm_before: True

MaskNet: !new:speechbrain.lobes.models.dual_path.Dual_Path_Model
    num_spks: NUM_SPKS
    in_channels: 16
    out_channels: 16
    num_layers: 1
    K: 50
    intra_model: !ref <SBtfintra>
    inter_model: !ref <SBtfinter>
    norm: ln
    linear_layer_after_inter_intra: False
    skip_around_intra: True

Decoder: !new:speechbrain.lobes.models.dual_path.Decoder
    in_channels: 16
    out_channels: 1
    kernel_size: 16
    stride: 8
    bias: False

modules:
    encoder: !ref <Encoder>
    decoder: !ref <Decoder>
    masknet: !ref <MaskNet>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        encoder: !ref <Encoder>
        masknet: !ref <MaskNet>
        decoder: !ref <Decoder>
"""
# The demo recipe at the sizes of that folder.
MATCHING_DEMO = {
    **TINY_MODEL,
    "kernel_size": 16,
    "kernel_stride": 8,
    "chunk_size": 50,
}


def write_speechbrain_sepformer(folder, num_spks=2, seed=0):
    """A SpeechBrain SepFormer folder with random weights; returns its
    modules."""
    folder.mkdir(parents=True)
    text = SPEECHBRAIN_SEPFORMER.replace("NUM_SPKS", str(num_spks))
    (folder / "hyperparams.yaml").write_text(text)
    torch.manual_seed(seed)
    modules = load_hyperpyyaml(text)["modules"]
    for name, module in modules.items():
        torch.save(module.state_dict(), folder / f"{name}.ckpt")
    return modules


@pytest.fixture(scope="module")
def speechbrain_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("published") / "sepformer"
    write_speechbrain_sepformer(folder)
    return folder


def test_speechbrain_folder_loads_as_a_separator(speechbrain_folder, tmp_path):
    # SpeechBrain's own interface takes the folder first: the layout is its.
    reference = SepformerSeparation.from_hparams(
        source=str(speechbrain_folder), savedir=str(tmp_path / "sb")
    )
    model = NoiseRobustSeparation.from_hparams(source=str(speechbrain_folder))
    assert not model.has_enhancer and model.num_spks == 2
    mix = torch.randn(1, 4000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference.separate_batch(mix)
    torch.testing.assert_close(model.separate_batch(mix), expected)
    with pytest.raises(ValueError, match="no enhancer"):
        model.enhance_batch(mix)


def test_warm_start_from_a_speechbrain_folder(speechbrain_folder, tmp_path):
    fresh, _ = load_experiment(
        DEMO, {**MATCHING_DEMO, "output_folder": str(tmp_path / "a")}
    )
    hparams, _ = load_experiment(
        DEMO,
        {
            **MATCHING_DEMO,
            "output_folder": str(tmp_path / "b"),
            "pretrained_separator": str(speechbrain_folder),
        },
    )
    load_separator(separator_pretrainer(hparams))
    for name in ("encoder", "masknet", "decoder"):
        published = torch.load(speechbrain_folder / f"{name}.ckpt")
        loaded = hparams["modules"][name].state_dict()
        assert published.keys() == loaded.keys()
        for key, value in published.items():
            assert torch.equal(loaded[key], value), (name, key)
    # The EnhanceNet starts as it would without warm start (same seed).
    for key, value in fresh["enhancer"].state_dict().items():
        assert torch.equal(hparams["enhancer"].state_dict()[key], value), key
    assert not torch.equal(
        fresh["encoder"].conv1d.weight, hparams["encoder"].conv1d.weight
    )


def test_warm_start_is_off_by_default(tmp_path):
    hparams, _ = load_experiment(DEMO, {"output_folder": str(tmp_path)})
    assert hparams["pretrained_separator"] is None
    assert separator_pretrainer(hparams) is None


def test_warm_start_refuses_a_folder_that_does_not_fit(tmp_path):
    wrong = tmp_path / "three"
    write_speechbrain_sepformer(wrong, num_spks=3)
    hparams, _ = load_experiment(
        DEMO,
        {
            **MATCHING_DEMO,
            "output_folder": str(tmp_path / "exp"),
            "pretrained_separator": str(wrong),
        },
    )
    with pytest.raises(
        PretrainedFolderError, match="masknet.ckpt: does not fit"
    ):
        load_separator(separator_pretrainer(hparams))
    (wrong / "decoder.ckpt").unlink()
    with pytest.raises(ConfigError, match="decoder.ckpt not found"):
        separator_pretrainer(hparams)


def test_sepformer_export_loads_with_speechbrain(tmp_path):
    exp_dir, separator = make_experiment(tmp_path, enhancer=False)
    out = export_pretrained(exp_dir, tmp_path / "pretrained")
    assert sorted(p.name for p in out.glob("*.ckpt")) == [
        "decoder.ckpt",
        "encoder.ckpt",
        "masknet.ckpt",
    ]
    sb_model = SepformerSeparation.from_hparams(
        source=str(out), savedir=str(tmp_path / "sb")
    )
    mix = torch.randn(1, 3000, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = separator.separate(mix)
        torch.testing.assert_close(sb_model.separate_batch(mix), expected)


def to_legacy_layout(save_dir):
    """Rewrites every checkpoint as an earlier gmsep saved it: the network
    as one ``separator.ckpt``."""
    for folder in save_dir.glob("CKPT+*"):
        state = {}
        for name in ("encoder", "enhancer", "masknet", "decoder"):
            part = torch.load(folder / f"{name}.ckpt")
            state.update({f"{name}.{k}": v for k, v in part.items()})
            (folder / f"{name}.ckpt").unlink()
        torch.save(state, folder / "separator.ckpt")


def test_legacy_checkpoints_are_refused_then_converted(tmp_path, capsys):
    exp_dir, separator = make_experiment(tmp_path)
    save_dir = exp_dir / "save"
    to_legacy_layout(save_dir)
    with pytest.raises(
        LegacyCheckpointError,
        match=f"python -m gmsep upgrade-checkpoints {save_dir}",
    ):
        export_pretrained(exp_dir, tmp_path / "out")
    assert main(["upgrade-checkpoints", str(save_dir)]) == 0
    assert "Converted" in capsys.readouterr().out
    assert len(list(save_dir.glob("CKPT+*/separator.ckpt"))) == 2  # kept
    out = export_pretrained(exp_dir, tmp_path / "out")
    model = NoiseRobustSeparation.from_hparams(source=str(out))
    mix = torch.randn(1, 3000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = separator.separate(mix)
    torch.testing.assert_close(model.separate_batch(mix), expected)
    assert main(["upgrade-checkpoints", str(save_dir)]) == 0
    assert "no checkpoint to convert" in capsys.readouterr().out
