"""The separator as an ONNX graph, and onnxruntime running it.

``gmsep export ... --onnx`` writes ``separator.onnx`` into the pretrained
folder: the whole inference network, noisy mixture in, separated sources
(and, with an EnhanceNet, the enhanced mixture) out, with dynamic batch and
time axes::

    mix [B, T] --> est_sources [B, T, S], enhanced [B, T]

It is traced with the TorchScript-based exporter (``dynamo=False``), which
records the shape arithmetic of SpeechBrain's dual-path segmentation (the
padding to whole chunks, the overlap-add) as graph operations, so one graph
serves every length. One part is replaced for the trace: SpeechBrain's
``Decoder`` squeezes every dimension of size one after its transposed
convolution, a choice made in Python from the traced shapes (a batch of one
would be baked into the graph); :class:`SeparationGraph` calls the
transposed convolution itself and keeps the batch axis.

:class:`OnnxSeparator` runs such a file with onnxruntime behind the same
``separate`` / ``enhance`` methods as ``UnifiedSeparator``, so chunking and
everything above it do not change.

Authors
 * gmsep contributors 2026
"""

import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F

ONNX_FILE = "separator.onnx"
INPUT = "mix"
SOURCES = "est_sources"
ENHANCED = "enhanced"
# ONNX operator set of the export: LayerNormalization is a single node from 17.
OPSET = 17
# The length traced: any length works, the graph's shapes are symbolic.
TRACE_SAMPLES = 4001
# (batch, seconds) of the mixtures an export is checked on; one sample more
# makes the lengths odd, and neither length is the traced one.
PARITY_SHAPES = ((1, 0.5), (2, 1.25))


class SeparationGraph(torch.nn.Module):
    """``UnifiedSeparator`` inference as one traceable function.

    Arguments
    ---------
    separator : gmsep.model.UnifiedSeparator
        The network (in eval mode).

    Example
    -------
    >>> separator = tiny_example_separator()
    >>> mix = torch.randn(2, 101)
    >>> est_sources, enhanced = SeparationGraph(separator)(mix)
    >>> torch.allclose(est_sources, separator.separate(mix), atol=1e-6)
    True
    >>> torch.allclose(enhanced, separator.enhance(mix), atol=1e-6)
    True
    """

    def __init__(self, separator):
        super().__init__()
        self.separator = separator

    def forward(self, mix):
        """mix [B, T] -> est_sources [B, T, S] (, enhanced [B, T])."""
        length = mix.shape[-1]
        _, enhanced = self.separator.encode_enhance(mix)  # B, N, L
        masks = self.separator.masknet(enhanced)  # S, B, N, L
        num_spks, batch = masks.shape[:2]
        sep_feats = (enhanced.unsqueeze(0) * masks).flatten(0, 1)  # S*B, N, L
        est_sources = self._decode(sep_feats).view(num_spks, batch, -1)
        est_sources = self._fit(est_sources.permute(1, 2, 0), length)
        if self.separator.enhancer is None:
            return (est_sources,)
        return est_sources, self._fit(self._decode(enhanced), length)

    def _decode(self, feats):
        """B, N, L -> B, T': the Decoder's transposed convolution without
        its squeeze, whose choice would depend on the traced batch size."""
        decoder = self.separator.decoder
        if isinstance(decoder, torch.nn.ConvTranspose1d):
            return torch.nn.ConvTranspose1d.forward(decoder, feats)[:, 0]
        return decoder(feats).reshape(feats.shape[0], -1)

    @staticmethod
    def _fit(signal, length):
        """Zero-pads the time axis (dim 1) to length: the transposed
        convolution gives T' in (T - stride, T], never more, so the pad
        is never negative and the graph needs no branch."""
        missing = length - signal.shape[1]
        pad = (0, 0) * (signal.dim() - 2) + (0, missing)
        return F.pad(signal, pad)


def export_onnx(separator, path):
    """Writes the separator's inference graph as an ONNX file.

    Arguments
    ---------
    separator : gmsep.model.UnifiedSeparator
        The network; it is exported on the CPU, in eval mode.
    path : str or os.PathLike
        The ``.onnx`` file to write.

    Returns
    -------
    list of str
        The output names: ``est_sources`` and, with an EnhanceNet,
        ``enhanced``.
    """
    graph = SeparationGraph(separator.cpu().eval()).eval()
    outputs = [SOURCES] + ([ENHANCED] if separator.enhancer is not None else [])
    axes = {name: {0: "batch", 1: "time"} for name in (INPUT, *outputs)}
    example = torch.zeros(1, TRACE_SAMPLES)
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer warns about every Python decision on a shape (the
        # attention's shape checks, the always-positive padding): none of
        # them depends on the batch or the length.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            os.fspath(path),
            input_names=[INPUT],
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return outputs


def si_snr_db(estimate, reference):
    """The lowest SI-SNR (dB) of estimate against reference over the
    signals of [B, T] or [B, T, S] tensors (time on dim 1), in float64.

    Example
    -------
    >>> ref = torch.randn(2, 800, 2)
    >>> round(si_snr_db(ref + 1e-3 * torch.randn(2, 800, 2), ref)) in range(55, 65)
    True
    """
    est, ref = estimate.double(), reference.double()
    est = est - est.mean(dim=1, keepdim=True)
    ref = ref - ref.mean(dim=1, keepdim=True)
    scale = (est * ref).sum(1, keepdim=True) / (ref * ref).sum(1, keepdim=True)
    target = scale * ref
    ratio = (target**2).sum(1) / ((est - target) ** 2).sum(1).clamp_min(1e-30)
    return float(10 * torch.log10(ratio).min())


def onnx_parity(separator, path, sample_rate, shapes=PARITY_SHAPES, seed=0):
    """How closely onnxruntime running path follows the network.

    Arguments
    ---------
    separator : gmsep.model.UnifiedSeparator
        The network the file was exported from.
    path : str or os.PathLike
        The ONNX file.
    sample_rate : int
        Its rate, for the lengths of ``shapes``.
    shapes : tuple of (int, float)
        (batch, seconds) of the random mixtures; one sample is added.
    seed : int
        Seed of the mixtures.

    Returns
    -------
    dict
        ``"BxT"`` -> the lowest SI-SNR (dB) of onnxruntime's outputs (every
        source, and the enhanced mixture) against the network's.
    """
    runtime = OnnxSeparator(path)
    generator = torch.Generator().manual_seed(seed)
    parity = {}
    for batch, seconds in shapes:
        length = round(seconds * sample_rate) + 1
        mix = 0.1 * torch.randn(batch, length, generator=generator)
        with torch.no_grad():
            pairs = [(runtime.separate(mix), separator.separate(mix))]
            if runtime.has_enhancer:
                pairs.append((runtime.enhance(mix), separator.enhance(mix)))
        parity[f"{batch}x{length}"] = min(
            si_snr_db(est, ref) for est, ref in pairs
        )
    return parity


def session_options(threads=None):
    """onnxruntime options: ``threads`` for the operators (default: torch's
    thread count, so both backends use the same cores), one at a time."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return options


class OnnxSeparator:
    """A separator ONNX file run by onnxruntime on the CPU.

    Arguments
    ---------
    path : str or os.PathLike
        A file written by :func:`export_onnx`.
    threads : int, optional
        Operator threads (default: ``torch.get_num_threads()``).

    Example
    -------
    >>> separator = tiny_example_separator()
    >>> path = getfixture("tmp_path") / "separator.onnx"
    >>> _ = export_onnx(separator, path)
    >>> runtime = OnnxSeparator(path)
    >>> mix = torch.randn(3, 777)
    >>> torch.allclose(runtime.separate(mix), separator.separate(mix), atol=1e-5)
    True
    """

    def __init__(self, path, threads=None):
        import onnxruntime

        self.path = os.fspath(path)
        self.session = onnxruntime.InferenceSession(
            self.path,
            session_options(threads),
            providers=["CPUExecutionProvider"],
        )
        self.output_names = [out.name for out in self.session.get_outputs()]

    @property
    def has_enhancer(self):
        """Whether the graph has the enhanced-mixture output."""
        return ENHANCED in self.output_names

    def _run(self, name, mix):
        feed = {INPUT: np.ascontiguousarray(mix.detach().cpu().numpy())}
        (result,) = self.session.run([name], feed)
        return torch.from_numpy(result)

    def separate(self, mix):
        """mix [B, T] float32 -> est_sources [B, T, S] (CPU)."""
        return self._run(SOURCES, mix)

    def enhance(self, mix):
        """mix [B, T] float32 -> enhanced [B, T] (CPU)."""
        if not self.has_enhancer:
            raise ValueError(f"{self.path}: the graph has no enhanced output")
        return self._run(ENHANCED, mix)


def tiny_example_separator():
    """A tiny random unified separator (16 filters), for the examples."""
    from speechbrain.lobes.models.dual_path import (
        Decoder,
        Dual_Path_Model,
        Encoder,
        SBTransformerBlock,
    )

    from gmsep.model import UnifiedSeparator

    def masknet(num_spks):
        def block():
            return SBTransformerBlock(1, 16, 2, d_ffn=32, dropout=0.0)

        return Dual_Path_Model(
            16, 16, block(), block(), num_layers=1, K=8, num_spks=num_spks
        )

    return UnifiedSeparator(
        Encoder(kernel_size=4, out_channels=16),
        masknet(2),
        Decoder(16, 1, kernel_size=4, stride=2, bias=False),
        enhancer=masknet(1),
    ).eval()
