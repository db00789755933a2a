"""ONNX export and the onnxruntime backend: onnxruntime's outputs against
torch's, on a tiny exported experiment and on the paper-size network with
random weights.

Parity is SI-SNR of onnxruntime's output against torch's: >= 50 dB on every
source (float32 rounding alone gives about 70 dB and more).
"""

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from gmsep.cli import main
from gmsep.inference.export import export_pretrained
from gmsep.inference.onnx_backend import (
    ONNX_FILE,
    OnnxSeparator,
    export_onnx,
    onnx_parity,
    si_snr_db,
)
from gmsep.inference.pretrained import (
    NoiseRobustSeparation,
    PretrainedFolderError,
)
from gmsep.training.experiment import load_experiment
from tiny_config import REPO, make_experiment

MIN_DB = 50.0
SAMPLE_RATE = 8000


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(exported folder with separator.onnx, torch model, onnxruntime model,
    the experiment)."""
    root = tmp_path_factory.mktemp("onnx")
    exp_dir, _ = make_experiment(root)
    out = export_pretrained(exp_dir, root / "pretrained", onnx=True)
    torch_model = NoiseRobustSeparation.from_hparams(source=str(out))
    onnx_model = NoiseRobustSeparation.from_hparams(source=str(out))
    onnx_model.use_backend("onnxruntime")
    return out, torch_model, onnx_model, exp_dir


def test_export_writes_the_graph_and_says_how(exported):
    out, _, onnx_model, _ = exported
    assert (out / ONNX_FILE).is_file()
    assert isinstance(onnx_model.engine, OnnxSeparator)
    assert onnx_model.engine.output_names == ["est_sources", "enhanced"]
    card = (out / "README.md").read_text()
    assert "## ONNX" in card and "dynamo=False" in card
    assert "onnxruntime" in card and " dB" in card


@pytest.mark.parametrize(
    "batch, length", [(1, 16), (1, 801), (2, 1999), (3, 4001), (1, 12345)]
)
def test_onnxruntime_follows_torch(exported, batch, length, one_thread):
    _, torch_model, onnx_model, _ = exported
    mix = 0.1 * torch.randn(
        batch, length, generator=torch.Generator().manual_seed(length)
    )
    est = onnx_model.separate_batch(mix)
    ref = torch_model.separate_batch(mix)
    assert est.shape == ref.shape == (batch, length, 2)
    assert si_snr_db(est, ref) >= MIN_DB
    enhanced = onnx_model.enhance_batch(mix)
    assert enhanced.shape == (batch, length)
    assert si_snr_db(enhanced, torch_model.enhance_batch(mix)) >= MIN_DB


def test_shorter_than_the_kernel_is_padded_as_with_torch(exported, one_thread):
    _, torch_model, onnx_model, _ = exported
    mix = 0.1 * torch.randn(1, 5)  # kernel 16: padded, then cropped back
    est = onnx_model.separate_batch(mix)
    assert est.shape == (1, 5, 2)
    assert torch.allclose(est, torch_model.separate_batch(mix), atol=1e-5)


def test_long_recordings_use_the_same_chunking(exported, one_thread):
    _, torch_model, onnx_model, _ = exported
    mix = 0.1 * torch.randn(1, 3 * SAMPLE_RATE + 7)  # 1 s chunks: 4 of them
    chunks = []
    est = onnx_model.separate_long(
        mix, chunk_seconds=1.0, progress=chunks.append
    )
    assert len(chunks) == 4
    ref = torch_model.separate_long(mix, chunk_seconds=1.0)
    assert si_snr_db(est, ref) >= MIN_DB


def test_paper_size_network_exports(tmp_path, one_thread):
    """hparams/models/unified-sepformer.yaml at the paper's sizes (random
    weights): 29.2 M parameters, one short odd length (time)."""
    hparams, _ = load_experiment(
        os.path.join(REPO, "hparams", "sepformer-gm-libri2mix.yaml"),
        {"data_folder": os.devnull, "output_folder": str(tmp_path / "exp")},
    )
    separator = hparams["separator"].eval()
    assert sum(p.numel() for p in separator.parameters()) > 29e6
    path = tmp_path / ONNX_FILE
    export_onnx(separator, path)
    parity = onnx_parity(separator, path, SAMPLE_RATE, shapes=((1, 0.3),))
    assert list(parity) == ["1x2401"]
    assert parity["1x2401"] >= MIN_DB, parity


def test_backend_needs_the_graph(exported, tmp_path):
    exp_dir = exported[-1]
    out = export_pretrained(exp_dir, tmp_path / "plain")
    model = NoiseRobustSeparation.from_hparams(source=str(out))
    with pytest.raises(PretrainedFolderError, match="separator.onnx: file"):
        model.use_backend("onnxruntime")
    with pytest.raises(ValueError, match="backend='tensorrt'"):
        model.use_backend("tensorrt")
    assert model.backend == "torch"


def test_cli_export_and_separate_with_onnxruntime(
    exported, tmp_path, one_thread
):
    exp_dir = exported[-1]
    out = tmp_path / "pretrained"
    assert main(["export", str(exp_dir), "--out", str(out), "--onnx"]) == 0
    assert (out / ONNX_FILE).is_file()
    mix = tmp_path / "mix.wav"
    rng = np.random.default_rng(0)
    sf.write(mix, 0.1 * rng.standard_normal(SAMPLE_RATE + 3), SAMPLE_RATE)
    common = [
        "separate",
        str(mix),
        "--model",
        str(out),
        "--enhanced",
        "--chunk-seconds",
        "0.5",
    ]
    assert main([*common, "--out", str(tmp_path / "torch")]) == 0
    assert (
        main(
            [
                *common,
                "--out",
                str(tmp_path / "ort"),
                "--backend",
                "onnxruntime",
            ]
        )
        == 0
    )
    for name in ("mix_s1.wav", "mix_s2.wav", "mix_enhanced.wav"):
        est, _ = sf.read(tmp_path / "ort" / name)
        ref, _ = sf.read(tmp_path / "torch" / name)
        assert est.shape == ref.shape == (SAMPLE_RATE + 3,)
        # 16-bit files: their rounding bounds the agreement
        assert (
            si_snr_db(torch.from_numpy(est)[None], torch.from_numpy(ref)[None])
            >= 40
        )
    # exporting again without --onnx replaces the whole earlier export
    assert main(["export", str(exp_dir), "--out", str(out), "--overwrite"]) == 0
    assert not (out / ONNX_FILE).exists()


def test_batched_chunks_with_onnxruntime(exported, one_thread):
    _, _, onnx_model, _ = exported
    mix = 0.1 * torch.randn(1, 4 * SAMPLE_RATE + 5)
    sequential = onnx_model.separate_long(mix, chunk_seconds=1.0)
    onnx_model.chunk_batch = 3
    try:
        batched = onnx_model.separate_long(mix, chunk_seconds=1.0)
    finally:
        onnx_model.chunk_batch = 1
    assert torch.allclose(batched, sequential, rtol=1e-5, atol=1e-6)
