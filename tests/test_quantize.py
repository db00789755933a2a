"""int8 separation (--quantize int8): what is quantised, that both backends
run it through the same interface, and that the CLI selects it.

How close int8 stays to float32 on speech is measured on the demo model
(README, "Performance"); on the random tiny model here the output must only
stay that model's output (a wrong graph or a lost layer gives about 0 dB).
"""

import numpy as np
import pytest
import soundfile as sf
import torch
from gmsep.cli import main
from gmsep.inference.export import export_pretrained
from gmsep.inference.onnx_backend import OnnxSeparator, si_snr_db
from gmsep.inference.pretrained import (
    NoiseRobustSeparation,
    PretrainedFolderError,
)
from gmsep.inference.quantize import INT8_ONNX_FILE, quantize_torch
from tiny_config import make_experiment, tiny_separator

SAMPLE_RATE = 8000


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    exp_dir, _ = make_experiment(root)
    return export_pretrained(exp_dir, root / "pretrained", onnx=True)


def test_torch_int8_quantises_the_linear_layers_of_a_copy():
    separator = tiny_separator().eval()
    quantized = quantize_torch(separator)
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    linear = [m for m in separator.modules() if type(m) is torch.nn.Linear]
    int8 = [m for m in quantized.modules() if isinstance(m, dynamic)]
    # every feed-forward layer (2 per transformer layer), none left float
    assert len(int8) == len(linear) > 0
    assert not [m for m in quantized.modules() if type(m) is torch.nn.Linear]
    assert all(m.weight().dtype == torch.qint8 for m in int8)
    # the original keeps its float32 layers
    assert all(m.weight.dtype == torch.float32 for m in linear)


def test_onnx_int8_file_has_integer_products(folder):
    import onnx

    graph = onnx.load(folder / INT8_ONNX_FILE).graph
    ops = {node.op_type for node in graph.node}
    assert "DynamicQuantizeLinear" in ops or "DynamicQuantizeMatMul" in ops
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul"}
    # the weights of the products are stored as int8
    int8 = [
        w for w in graph.initializer if w.data_type == onnx.TensorProto.INT8
    ]
    assert len(int8) >= 8
    card = (folder / "README.md").read_text()
    assert INT8_ONNX_FILE in card and "--quantize int8" in card


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_int8_follows_float32(folder, backend, one_thread):
    model = NoiseRobustSeparation.from_hparams(source=str(folder))
    mix = 0.1 * torch.randn(2, 6001, generator=torch.Generator().manual_seed(0))
    reference = model.separate_batch(mix)
    enhanced_reference = model.enhance_batch(mix)
    model.use_backend(backend, "int8")
    assert model.quantize == "int8"
    if backend == "onnxruntime":
        assert isinstance(model.engine, OnnxSeparator)
        assert model.engine.path.endswith(INT8_ONNX_FILE)
    est = model.separate_batch(mix)
    assert est.shape == reference.shape
    assert not torch.equal(est, reference)  # int8 is in use
    assert si_snr_db(est, reference) >= 5.0
    enhanced = model.enhance_batch(mix)
    assert si_snr_db(enhanced, enhanced_reference) >= 5.0
    model.use_backend("torch")
    assert torch.equal(model.separate_batch(mix), reference)


def test_int8_needs_its_file_and_a_known_setting(folder, tmp_path):
    model = NoiseRobustSeparation.from_hparams(source=str(folder))
    with pytest.raises(PretrainedFolderError, match="separator-int8.onnx"):
        model.use_backend(
            "onnxruntime", "int8", onnx_file=tmp_path / INT8_ONNX_FILE
        )
    with pytest.raises(ValueError, match="quantize='int4'"):
        model.use_backend("torch", "int4")


def test_cli_separates_with_int8(folder, tmp_path, one_thread):
    mix = tmp_path / "mix.wav"
    rng = np.random.default_rng(0)
    sf.write(mix, 0.1 * rng.standard_normal(SAMPLE_RATE + 3), SAMPLE_RATE)
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        argv = ["separate", str(mix), "--model", str(folder), "--out", str(out)]
        argv += ["--backend", backend, "--quantize", "int8"]
        assert main(argv) == 0
        est, rate = sf.read(out / "mix_s1.wav")
        assert rate == SAMPLE_RATE and est.shape == (SAMPLE_RATE + 3,)
