"""Export of an experiment folder and loading through NoiseRobustSeparation.

The experiment folders are built by ``tiny_config.make_experiment`` as
train.py would leave them (resolved hyperparams.yaml, Checkpointer checkpoints
with a validation si-snr, test_results.csv), with a tiny model and no training.
"""

import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from gmsep.data.audio import DataError
from gmsep.data.mixing import integrated_loudness
from gmsep.inference.export import ExportError, export_pretrained
from gmsep.inference.pretrained import (
    NoiseRobustSeparation,
    PretrainedFolderError,
)
from tiny_config import make_experiment

SAMPLE_RATE = 8000


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
        "gmsep.data.augment",
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


def test_numpy_in_numpy_out(unified):
    """NumPy arrays and one-dimensional mixtures come back as they went in:
    the same numbers as the tensor path, of the array's dtype."""
    _, separator, _, model = unified
    mix = np.random.default_rng(2).uniform(-0.5, 0.5, (2, 3000))  # float64
    with torch.no_grad():
        expected = separator.separate(torch.from_numpy(mix).float())
        expected_enhanced = separator.enhance(torch.from_numpy(mix).float())
    est = model.separate_batch(mix)
    assert isinstance(est, np.ndarray) and est.dtype == np.float64
    assert est.shape == (2, 3000, 2)
    np.testing.assert_array_equal(est, expected.numpy().astype(np.float64))
    one = model.separate_batch(mix[1].astype(np.float32))  # [T] -> [T, S]
    assert one.dtype == np.float32 and one.shape == (3000, 2)
    np.testing.assert_allclose(one, expected[1].numpy(), atol=1e-6)
    enhanced = model.enhance_batch(mix)
    assert isinstance(enhanced, np.ndarray) and enhanced.shape == (2, 3000)
    np.testing.assert_allclose(enhanced, expected_enhanced.numpy(), atol=1e-6)
    # a tensor [T] stays a tensor, without the batch dimension
    tensor = model.separate_batch(torch.from_numpy(mix[0]).float())
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (3000, 2)
    torch.testing.assert_close(tensor, expected[0])
    # chunked, as separate_long
    long = model.separate_long(mix[0], chunk_seconds=0.1, overlap_seconds=0.02)
    assert isinstance(long, np.ndarray) and long.shape == (3000, 2)
    enhanced_long = model.enhance_long(mix, 0.1, 0.02)
    assert isinstance(enhanced_long, np.ndarray)
    assert enhanced_long.shape == (2, 3000)


def test_batch_at_another_sample_rate(unified):
    """sample_rate: resampled to the model's and the sources back, the
    input's length sample for sample."""
    _, separator, _, model = unified
    mix = np.random.default_rng(3).uniform(-0.5, 0.5, 4001).astype("float32")
    est = model.separate_batch(mix, sample_rate=16000)
    assert est.shape == (4001, 2)
    at_model_rate = torchaudio.functional.resample(
        torch.from_numpy(mix)[None], 16000, SAMPLE_RATE
    )
    with torch.no_grad():
        sources = separator.separate(at_model_rate)  # 1, T', S
    back = torchaudio.functional.resample(
        sources.transpose(1, 2), SAMPLE_RATE, 16000
    ).transpose(1, 2)[0, :4001]
    np.testing.assert_allclose(est, back.numpy(), atol=1e-6)
    # the model's own rate changes nothing
    np.testing.assert_array_equal(
        model.separate_batch(mix, sample_rate=SAMPLE_RATE),
        model.separate_batch(mix),
    )
    long = model.separate_long(
        torch.from_numpy(mix)[None], 0.1, 0.02, sample_rate=16000
    )
    assert isinstance(long, torch.Tensor) and long.shape == (1, 4001, 2)
    enhanced = model.enhance_batch(mix, sample_rate=44100)
    assert enhanced.shape == (4001,)


def test_separate_file_resamples_and_downmixes(unified, tmp_path):
    _, separator, _, model = unified
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, (4000, 2)).astype("float32")
    path = tmp_path / "mix16k.wav"
    sf.write(path, stereo, 16000, subtype="FLOAT")
    est = model.separate_file(path, savedir=tmp_path / "sep", normalize="none")
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


def test_output_levels_and_formats(unified, tmp_path):
    """peak (the default, as SpeechBrain's separate_file): each source to a
    peak of 0.99; loudness: each to the file's integrated loudness; none:
    the network's scale. The subtype is the files' format."""
    _, _, _, model = unified
    path = tmp_path / "mix16k.wav"
    rng = np.random.default_rng(4)
    sf.write(path, rng.uniform(-0.5, 0.5, 8000), 16000)
    raw = model.separate_file(path, resample_back=True, normalize="none")
    peak = model.separate_file(path, resample_back=True)
    peaks = peak[0].abs().amax(dim=0)
    torch.testing.assert_close(peaks, torch.full((2,), 0.99))
    # one gain per source
    gains = peak[0].abs().amax(dim=0) / raw[0].abs().amax(dim=0)
    torch.testing.assert_close(peak[0], raw[0] * gains)

    target = integrated_loudness(
        torch.from_numpy(sf.read(path)[0]).float(), 16000
    )
    out = tmp_path / "loud"
    loud = model.separate_file(
        path, out, resample_back=True, normalize="loudness", subtype="FLOAT"
    )
    for s in range(2):
        assert integrated_loudness(loud[0, :, s], 16000) == pytest.approx(
            target, abs=0.01
        )
        written, rate = sf.read(out / f"mix16k_s{s + 1}.wav", dtype="float32")
        assert (
            rate == 16000 and sf.info(out / "mix16k_s1.wav").subtype == "FLOAT"
        )
        np.testing.assert_array_equal(written, loud[0, :, s].numpy())
    enhanced = model.enhance_file(
        path, out, resample_back=True, subtype="PCM_24"
    )
    assert float(enhanced.abs().max()) == pytest.approx(0.99)
    assert sf.info(out / "mix16k_enhanced.wav").subtype == "PCM_24"
    # a silent recording stays silent, whatever the rule
    sf.write(tmp_path / "silent.wav", np.zeros(4000), 8000)
    for rule in ("peak", "loudness"):
        silent = model.separate_file(tmp_path / "silent.wav", normalize=rule)
        assert torch.isfinite(silent).all()


def test_audio_shorter_than_encoder_kernel(unified, tmp_path):
    """Tensors are padded for the encoder; a file that short is refused."""
    _, _, _, model = unified
    path = tmp_path / "tiny.wav"
    sf.write(path, np.full(5, 0.1, dtype="float32"), SAMPLE_RATE)
    with pytest.raises(DataError, match="tiny.wav: 5 frames .* at least 0.1 s"):
        model.separate_file(path)
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


def test_overwrite_replaces_only_an_earlier_export(unified, tmp_path):
    exp_dir, _, out, _ = unified
    earlier = shutil.copytree(out, tmp_path / "earlier")
    export_pretrained(exp_dir, earlier, overwrite=True)
    assert (earlier / "encoder.ckpt").is_file()
    (earlier / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"does not write \(notes.txt\)"):
        export_pretrained(exp_dir, earlier, overwrite=True)
    assert (earlier / "notes.txt").read_text() == "mine"
    user_folder = tmp_path / "user"
    user_folder.mkdir()
    (user_folder / "thesis.tex").write_text("keep me")
    with pytest.raises(ExportError, match="not a pretrained folder"):
        export_pretrained(exp_dir, user_folder, overwrite=True)
    assert (user_folder / "thesis.tex").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_bad_experiment(tmp_path):
    with pytest.raises(ExportError, match="hyperparams.yaml"):
        export_pretrained(tmp_path, tmp_path / "out")
    exp_dir, _ = make_experiment(tmp_path)
    for ckpt in (exp_dir / "save").glob("CKPT+*/encoder.ckpt"):
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


# hyperparams.yaml as exports of earlier versions wrote it: the module
# nodes at the top level, a `separator`, `pretrained_path` for the loader to
# set, and the names `gmsep.inference.*` of the one-module package.
EARLIER_EXPORT = """
sample_rate: 8000
num_spks: 2
encoder: &enc !new:speechbrain.lobes.models.dual_path.Encoder
  kernel_size: 16
  out_channels: 16
masknet: &mask !new:speechbrain.lobes.models.dual_path.Dual_Path_Model
  num_spks: 2
  in_channels: 16
  out_channels: 16
  num_layers: 2
  K: 50
  intra_model: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: 16
    nhead: 2
    d_ffn: 32
    dropout: 0
    use_positional_encoding: true
    norm_before: true
  inter_model: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: 16
    nhead: 2
    d_ffn: 32
    dropout: 0
    use_positional_encoding: true
    norm_before: true
  norm: ln
  linear_layer_after_inter_intra: false
  skip_around_intra: true
decoder: &dec !new:speechbrain.lobes.models.dual_path.Decoder
  in_channels: 16
  out_channels: 1
  kernel_size: 16
  stride: 8
  bias: false
separator: !new:gmsep.model.UnifiedSeparator
  encoder: *enc
  enhancer: null
  masknet: *mask
  decoder: *dec
  num_spks: 2
pretrained_path: !PLACEHOLDER
modules:
    encoder: !ref <encoder>
    masknet: !ref <masknet>
    decoder: !ref <decoder>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
  loadables:
    encoder: !ref <encoder>
    masknet: !ref <masknet>
    decoder: !ref <decoder>
  paths:
    encoder: !ref <pretrained_path>/encoder.ckpt
    masknet: !ref <pretrained_path>/masknet.ckpt
    decoder: !ref <pretrained_path>/decoder.ckpt
  custom_hooks:
    encoder: !name:gmsep.inference.strict_parameter_transfer
    masknet: !name:gmsep.inference.strict_parameter_transfer
    decoder: !name:gmsep.inference.strict_parameter_transfer
"""


def test_folder_of_an_earlier_export_still_loads(tmp_path):
    exp_dir, separator = make_experiment(tmp_path, enhancer=False)
    out = export_pretrained(exp_dir, tmp_path / "pretrained")
    (out / "hyperparams.yaml").write_text(EARLIER_EXPORT)
    model = NoiseRobustSeparation.from_hparams(source=str(out))
    mix = torch.randn(1, 3000, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = separator.separate(mix)
    torch.testing.assert_close(model.separate_batch(mix), expected)
