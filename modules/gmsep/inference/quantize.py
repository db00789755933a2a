"""int8 versions of the separator, for faster separation on a CPU.

Both are dynamic quantisations: weights stored as int8, activations
quantised on the fly per call (no calibration data), the accumulation in
int32 and every other operation in float32.

* torch (``quantize_torch``): ``torch.ao.quantization.quantize_dynamic`` of
  the ``torch.nn.Linear`` layers, i.e. the transformers' feed-forward layers.
  The attention's projections stay float32: ``nn.MultiheadAttention`` keeps
  its input projection as a bare parameter and its output projection in a
  class that dynamic quantisation leaves out by design.
* onnxruntime (``quantize_onnx``): ``onnxruntime.quantization.quantize_dynamic``
  of ``separator.onnx``, its constants folded first, into
  ``separator-int8.onnx``: every matrix product with a constant weight
  (``MatMul`` and ``Gemm``: the attention's projections included), one
  scale per weight matrix. The products of two activations (attention scores and
  their weighted sum) and the Encoder's and Decoder's convolutions stay
  float32. On the demo model one scale per matrix followed the float32
  output more closely than one per output channel (44 vs 32 dB SI-SNR).

How much either changes the output is measured, not assumed (README,
"Performance").

Authors
 * gmsep contributors 2026
"""

import copy
import logging
import os
import tempfile
import warnings

import torch

INT8_ONNX_FILE = "separator-int8.onnx"
QUANTIZE = ("none", "int8")


def quantize_torch(separator):
    """A copy of separator with dynamic int8 ``torch.nn.Linear`` layers.

    Arguments
    ---------
    separator : torch.nn.Module
        The network, on the CPU.

    Returns
    -------
    torch.nn.Module
        The quantised copy, in eval mode (the original is unchanged).

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
    >>> quantize_torch(net)[0].weight().dtype
    torch.qint8
    """
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which
        # is not a dependency; the dynamic path still works as documented
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(separator).cpu().eval(),
            {torch.nn.Linear},
            dtype=torch.qint8,
        )


def quantize_onnx(fp32_path, int8_path):
    """Writes the dynamic int8 version of an ONNX separator.

    Arguments
    ---------
    fp32_path : str or os.PathLike
        ``separator.onnx`` (see :func:`gmsep.inference.onnx_backend.export_onnx`).
    int8_path : str or os.PathLike
        The file to write.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    root = logging.getLogger()
    level = root.level
    # both log advice on the root logger (symbolic shape inference, which
    # the products quantised here do not need)
    root.setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(int8_path)) as tmp:
        folded = os.path.join(tmp, "folded.onnx")
        try:
            # Constant folding first: the traced attention projections
            # reach their MatMul through a slice and a transpose of the
            # weight, which the quantiser takes for an activation.
            quant_pre_process(
                os.fspath(fp32_path), folded, skip_symbolic_shape=True
            )
            quantize_dynamic(
                folded,
                os.fspath(int8_path),
                per_channel=False,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
                extra_options={"MatMulConstBOnly": True},
            )
        finally:
            root.setLevel(level)
