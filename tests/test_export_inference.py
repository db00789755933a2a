"""Export of an experiment folder and loading through NoiseRobustSeparation.

The experiment folders are built here as train.py would leave them (resolved
hyperparams.yaml, Checkpointer checkpoints with a validation si-snr,
test_results.csv), with a tiny model and no training.
"""

import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from gmsep.export import ExportError, export_pretrained
from gmsep.inference import NoiseRobustSeparation, PretrainedFolderError
from hyperpyyaml import load_hyperpyyaml, resolve_references

SAMPLE_RATE = 8000

# A tiny experiment modeled on hparams/demo.yaml: the model section as there,
# training-only entries (objectives, GM, optimizer, checkpointer) included so
# that the export has to leave them out.
EXPERIMENT_YAML = """
seed: 1234
__set_seed: !apply:torch.manual_seed [!ref <seed>]
experiment_name: tiny
output_folder: !PLACEHOLDER
save_folder: !ref <output_folder>/save
data_folder: !PLACEHOLDER
num_spks: 2
sample_rate: 8000
train_data: !ref <save_folder>/libri<num_spks>mix_train-360.csv
valid_data: !ref <save_folder>/libri<num_spks>mix_dev.csv
test_data: !ref <save_folder>/libri<num_spks>mix_test.csv
speed_perturb_remix: !new:gmsep.augment.SpeedPerturbRemix
    sample_rate: !ref <sample_rate>
    speeds: [95, 100, 105]
N_epochs: 2
lr: 0.001
se_weight: 0.1
objectives:
    - !new:gmsep.losses.Objective
        name: separation
        criterion: !new:gmsep.losses.PITNegSISNR
            threshold: 30
gm_mode: project
gradient_modulation: !new:gmsep.gradient_modulation.GradientModulation
    mode: !ref <gm_mode>

use_enhancer: True
kernel_size: 16
kernel_stride: 8
N_encoder_out: 16
d_model: 16
nhead: 2
d_ffn: 32
chunk_size: 50
encoder: !new:speechbrain.lobes.models.dual_path.Encoder
    kernel_size: !ref <kernel_size>
    out_channels: !ref <N_encoder_out>
enhancer_intra: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: !ref <d_model>
    nhead: !ref <nhead>
    d_ffn: !ref <d_ffn>
    dropout: 0
    use_positional_encoding: True
    norm_before: True
enhancer_inter: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: !ref <d_model>
    nhead: !ref <nhead>
    d_ffn: !ref <d_ffn>
    dropout: 0
    use_positional_encoding: True
    norm_before: True
enhancer: !new:speechbrain.lobes.models.dual_path.Dual_Path_Model
    num_spks: 1
    in_channels: !ref <N_encoder_out>
    out_channels: !ref <N_encoder_out>
    num_layers: 1
    K: !ref <chunk_size>
    intra_model: !ref <enhancer_intra>
    inter_model: !ref <enhancer_inter>
    norm: ln
    linear_layer_after_inter_intra: False
    skip_around_intra: True
masknet_intra: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: !ref <d_model>
    nhead: !ref <nhead>
    d_ffn: !ref <d_ffn>
    dropout: 0
    use_positional_encoding: True
    norm_before: True
masknet_inter: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: !ref <d_model>
    nhead: !ref <nhead>
    d_ffn: !ref <d_ffn>
    dropout: 0
    use_positional_encoding: True
    norm_before: True
masknet: !new:speechbrain.lobes.models.dual_path.Dual_Path_Model
    num_spks: !ref <num_spks>
    in_channels: !ref <N_encoder_out>
    out_channels: !ref <N_encoder_out>
    num_layers: 1
    K: !ref <chunk_size>
    intra_model: !ref <masknet_intra>
    inter_model: !ref <masknet_inter>
    norm: ln
    linear_layer_after_inter_intra: False
    skip_around_intra: True
decoder: !new:speechbrain.lobes.models.dual_path.Decoder
    in_channels: !ref <N_encoder_out>
    out_channels: 1
    kernel_size: !ref <kernel_size>
    stride: !ref <kernel_stride>
    bias: False
separator: !new:gmsep.model.UnifiedSeparator
    encoder: !ref <encoder>
    enhancer: ENHANCER
    masknet: !ref <masknet>
    decoder: !ref <decoder>
    num_spks: !ref <num_spks>
modules:
    separator: !ref <separator>
optimizer: !name:torch.optim.Adam
    lr: !ref <lr>
epoch_counter: !new:speechbrain.utils.epoch_loop.EpochCounter
    limit: !ref <N_epochs>
checkpointer: !new:speechbrain.utils.checkpoints.Checkpointer
    checkpoints_dir: !ref <save_folder>
    recoverables:
        separator: !ref <separator>
        counter: !ref <epoch_counter>
"""


def make_experiment(root, enhancer=True, num_spks=2, test_results=True, seed=0):
    """Writes an experiment folder as train.py leaves it.

    Two checkpoints: the best (validation si-snr -5) and a later, worse one
    (-1) with other weights. Returns (folder, the best UnifiedSeparator).
    """
    exp_dir = root / "experiment"
    template = EXPERIMENT_YAML.replace(
        "ENHANCER", "!ref <enhancer>" if enhancer else "null"
    )
    overrides = {
        "output_folder": str(exp_dir),
        "data_folder": str(root / "data"),
        "num_spks": num_spks,
        "seed": seed,
    }
    hparams = load_hyperpyyaml(template, overrides)
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "hyperparams.yaml").write_text(
        resolve_references(template, overrides).getvalue()
    )
    separator = hparams["separator"].eval()
    checkpointer = hparams["checkpointer"]
    checkpointer.save_checkpoint(meta={"si-snr": -5.0})
    best_state = {k: v.clone() for k, v in separator.state_dict().items()}
    with torch.no_grad():
        for param in separator.parameters():
            param.add_(0.5 * torch.randn_like(param))
    checkpointer.save_checkpoint(meta={"si-snr": -1.0})
    separator.load_state_dict(best_state)
    if test_results:
        (exp_dir / "test_results.csv").write_text(
            "snt_id,sdr,sdr_i,si-snr,si-snr_i\n"
            "a,10.0,9.0,8.0,7.0\nb,12.0,11.0,10.0,9.0\n"
            "avg,11.0,10.0,9.0,8.0\n"
        )
    return exp_dir, separator


@pytest.fixture(scope="module")
def unified(tmp_path_factory):
    """(experiment folder, best separator, exported folder, loaded model).

    Shared by the tests of this file: those that change the exported folder
    work on a copy.
    """
    root = tmp_path_factory.mktemp("unified")
    exp_dir, separator = make_experiment(root)
    out = export_pretrained(exp_dir, root / "pretrained")
    model = NoiseRobustSeparation.from_hparams(source=str(out))
    return exp_dir, separator, out, model


def test_export_writes_inference_folder(unified):
    _, separator, out, _ = unified
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "README.md",
        "decoder.ckpt",
        "encoder.ckpt",
        "enhancer.ckpt",
        "hyperparams.yaml",
        "masknet.ckpt",
    ]
    text = (out / "hyperparams.yaml").read_text()
    # training-only entries are gone; named dependencies are kept
    for training_key in (
        "objectives",
        "optimizer",
        "checkpointer",
        "gmsep.augment",
    ):
        assert training_key not in text
    for key in (
        "masknet_intra:",
        "enhancer_intra:",
        "sample_rate: 8000",
        "pretrainer:",
    ):
        assert key in text
    # per-module checkpoints are the best checkpoint's (si-snr -5) weights
    masknet = torch.load(out / "masknet.ckpt", weights_only=True)
    for key, value in separator.masknet.state_dict().items():
        assert torch.equal(masknet[key], value)
    card = (out / "README.md").read_text()
    for fact in (
        "libri2mix_train-360.csv",
        "gm_mode",
        "project",
        "si-snr_i",
        "8.00",
    ):
        assert fact in card
    total = sum(p.numel() for p in separator.parameters())
    assert f"{total:,}" in card


def test_round_trip_identical_outputs(unified):
    _, separator, _, model = unified
    torch.manual_seed(1)
    mix = torch.randn(2, 3000)
    with torch.no_grad():
        expected = separator.separate(mix)
        expected_enhanced = separator.enhance(mix)
    assert torch.equal(model.separate_batch(mix), expected)
    assert torch.equal(model.enhance_batch(mix), expected_enhanced)


def test_separate_file_resamples_and_downmixes(unified, tmp_path):
    _, separator, _, model = unified
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, (4000, 2)).astype("float32")
    path = tmp_path / "mix16k.wav"
    sf.write(path, stereo, 16000, subtype="FLOAT")
    est = model.separate_file(path, savedir=tmp_path / "sep")
    assert est.shape == (1, 2000, 2)
    # same as separating the downmixed, resampled signal directly
    mix, _ = model.load_mixture(path)
    with torch.no_grad():
        assert torch.equal(est, separator.separate(mix))
    back = model.separate_file(path, resample_back=True)
    assert back.shape == (1, 4000, 2)
    written, rate = sf.read(tmp_path / "sep" / "mix16k_s2.wav")
    assert rate == SAMPLE_RATE and written.shape == (2000,)
    enhanced = model.enhance_file(path, savedir=tmp_path / "sep")
    assert enhanced.shape == (1, 2000)
    assert (tmp_path / "sep" / "mix16k_enhanced.wav").is_file()


def test_audio_shorter_than_encoder_kernel(unified, tmp_path):
    _, _, _, model = unified
    path = tmp_path / "tiny.wav"
    sf.write(path, np.full(5, 0.1, dtype="float32"), SAMPLE_RATE)
    assert model.separate_file(path).shape == (1, 5, 2)
    assert model.separate_batch(torch.zeros(1, 3)).shape == (1, 3, 2)


def test_long_file_is_chunked(unified, tmp_path):
    _, _, _, model = unified
    path = tmp_path / "long.wav"
    sf.write(
        path, np.random.default_rng(1).uniform(-0.5, 0.5, 6000), SAMPLE_RATE
    )
    calls = []
    est = model.separate_file(
        path, chunk_seconds=0.25, overlap_seconds=0.05, progress=calls.append
    )
    assert est.shape == (1, 6000, 2) and torch.isfinite(est).all()
    assert len(calls) == math.ceil((6000 - 400) / 1600)


def test_reloading_never_uses_stale_weights(unified, tmp_path):
    """SpeechBrain's default strategy would reuse the links that the first
    load left in savedir and give the first model's weights again."""
    _, separator, out, _ = unified
    savedir = str(tmp_path / "savedir")
    NoiseRobustSeparation.from_hparams(source=str(out), savedir=savedir)
    other_dir, other = make_experiment(tmp_path / "other", seed=1)
    other_out = export_pretrained(other_dir, tmp_path / "other_pretrained")
    reloaded = NoiseRobustSeparation.from_hparams(
        source=str(other_out), savedir=savedir
    )
    mix = torch.randn(1, 2000)
    with torch.no_grad():
        assert torch.equal(reloaded.separate_batch(mix), other.separate(mix))
        assert not torch.equal(
            reloaded.separate_batch(mix), separator.separate(mix)
        )


def test_baseline_without_enhancer(tmp_path):
    exp_dir, separator = make_experiment(tmp_path, enhancer=False, num_spks=3)
    out = export_pretrained(exp_dir, tmp_path / "pretrained")
    assert not (out / "enhancer.ckpt").exists()
    model = NoiseRobustSeparation.from_hparams(source=str(out))
    mix = torch.randn(1, 2000)
    with torch.no_grad():
        assert torch.equal(model.separate_batch(mix), separator.separate(mix))
    with pytest.raises(ValueError, match="no enhancer"):
        model.enhance_batch(mix)


def test_export_refuses_to_overwrite(unified):
    exp_dir, _, out, _ = unified
    with pytest.raises(ExportError, match="not empty"):
        export_pretrained(exp_dir, out)


def test_export_bad_experiment(tmp_path):
    with pytest.raises(ExportError, match="hyperparams.yaml"):
        export_pretrained(tmp_path, tmp_path / "out")
    exp_dir, _ = make_experiment(tmp_path)
    for ckpt in (exp_dir / "save").glob("CKPT+*/separator.ckpt"):
        ckpt.unlink()
    with pytest.raises(ExportError, match="no CKPT"):
        export_pretrained(exp_dir, tmp_path / "out")


def test_missing_ckpt_named_in_error(unified, tmp_path):
    out = shutil.copytree(unified[2], tmp_path / "pretrained")
    (out / "masknet.ckpt").unlink()
    with pytest.raises(
        PretrainedFolderError, match="masknet.ckpt: file not found"
    ):
        NoiseRobustSeparation.from_hparams(source=str(out))
    (out / "hyperparams.yaml").unlink()
    with pytest.raises(
        PretrainedFolderError, match="hyperparams.yaml: file not found"
    ):
        NoiseRobustSeparation.from_hparams(source=str(out))


def test_mismatched_weights_are_an_error(unified, tmp_path):
    out = shutil.copytree(unified[2], tmp_path / "pretrained")
    torch.save({"conv1d.weight": torch.zeros(4, 1, 16)}, out / "encoder.ckpt")
    with pytest.raises(
        PretrainedFolderError, match="encoder.ckpt: does not fit"
    ):
        NoiseRobustSeparation.from_hparams(source=str(out))


def test_non_local_source_refused():
    with pytest.raises(PretrainedFolderError, match="only local"):
        NoiseRobustSeparation.from_hparams(source="speechbrain/sepformer-wham")
