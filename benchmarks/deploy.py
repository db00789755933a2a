"""Real-time factors of separation: torch and onnxruntime, fp32 and int8.

Four ways of running the same unified separator (random weights: speed does
not depend on them) separate the same noisy mixture through
``NoiseRobustSeparation.separate_long`` (the same padding and chunking),
interleaved, each under ``torch.inference_mode``:

* ``torch_fp32``: the modules (the reference of every ratio);
* ``torch_int8``: their dynamic int8 copy (``--quantize int8``);
* ``onnxruntime_fp32``: ``separator.onnx`` (``--backend onnxruntime``);
* ``onnxruntime_int8``: ``separator-int8.onnx``.

Every row reports the time, its ratio to ``torch_fp32`` in the same round
(median over rounds), the real-time factor (time / audio seconds) and the
GFLOP/s reached: the counted fp32 arithmetic of the separation (matrix
products and convolutions, the same for every row) over the time. The
machine's own limit is measured alongside: the GFLOP/s of a large fp32
matrix product on the same threads, so that each row reads as a fraction of
what the machine can do.

Authors
 * gmsep contributors 2026
"""

import os
import statistics
import time

import torch
from common import counted_gflop, interleaved_times, ratio_summary
from gmsep.inference.chunking import chunk_starts
from gmsep.inference.onnx_backend import export_onnx
from gmsep.inference.pretrained import NoiseRobustSeparation
from gmsep.inference.quantize import quantize_onnx
from inference import build_interfaces

CONTENDERS = (
    ("torch_fp32", "torch", "none"),
    ("torch_int8", "torch", "int8"),
    ("onnxruntime_fp32", "onnxruntime", "none"),
    ("onnxruntime_int8", "onnxruntime", "int8"),
)
# The fastest path should be at least this much faster than torch fp32.
SPEEDUP_TARGET = 1.5
# A square fp32 product of this size runs at the BLAS's sustained rate.
MATMUL_SIZE = 2048
MET = {True: "yes", False: "NO", None: "n/a (config not paper)"}


def matmul_gflops(repeats=5, size=MATMUL_SIZE):
    """The machine's fp32 limit here: GFLOP/s of a size x size matrix
    product on torch's threads (median of repeats, after one warm-up).

    Example
    -------
    >>> matmul_gflops(repeats=2, size=64) > 0
    True
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        torch.mm(a, b)
        if i:
            times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def _interface(unified, backend, quantize, folder):
    """A NoiseRobustSeparation on the same modules, run by one backend."""
    interface = NoiseRobustSeparation(
        modules=dict(unified.mods.items()),
        hparams={
            "sample_rate": unified.sample_rate,
            "num_spks": unified.num_spks,
            "separator": unified.separator,
        },
        run_opts={"device": "cpu"},
    )
    interface.folder = folder
    interface.use_backend(backend, quantize)
    return interface


def deployment_rtf(
    config, seconds_list, repeats, warmup, output_folder, long_repeats=1
):
    """Times the four contenders on mixtures of each length, interleaved.

    Arguments
    ---------
    config : str
        A benchmark configuration ("paper", "small", "tiny").
    seconds_list : list of float
        Durations of the mixtures (8 kHz), one table each.
    repeats : int
        Timed rounds per duration that fits in one chunk.
    warmup : int
        Untimed rounds before those.
    long_repeats : int
        Timed rounds, without warm-up, of a duration of several chunks
        (minutes a round at paper size on a 2-core CPU).
    output_folder : str
        A temporary folder (hparams' checkpointer, the ONNX files).

    Returns
    -------
    dict
        ``threads``, ``machine_gflops`` (fp32 matrix product), and per
        duration (``"4s"``...): ``gflop`` (counted, per separation),
        ``chunks`` and per contender ``seconds``, ``ratio`` (its time over
        torch fp32's, median of rounds), ``speedup``, ``rtf``, ``gflops``
        and ``fraction_of_machine``; ``fastest`` and whether its speedup
        meets ``SPEEDUP_TARGET``.
    """
    unified, _ = build_interfaces(config, output_folder)
    export_onnx(
        unified.separator, os.path.join(output_folder, "separator.onnx")
    )
    quantize_onnx(
        os.path.join(output_folder, "separator.onnx"),
        os.path.join(output_folder, "separator-int8.onnx"),
    )
    interfaces = {
        name: _interface(unified, backend, quantize, output_folder)
        for name, backend, quantize in CONTENDERS
    }
    results = {
        "threads": torch.get_num_threads(),
        "machine_gflops": matmul_gflops(),
    }
    for seconds in seconds_list:
        mix = 0.1 * torch.randn(
            1,
            round(seconds * unified.sample_rate),
            generator=torch.Generator().manual_seed(0),
        )

        def separate(interface, mix=mix):
            def run():
                with torch.inference_mode():
                    interface.separate_long(mix)

            return run

        contenders = {name: separate(i) for name, i in interfaces.items()}
        chunks = len(chunk_starts(mix.shape[-1], *unified.chunk_lengths()))
        gflop = counted_gflop(contenders["torch_fp32"])[0]
        if chunks == 1:
            times = interleaved_times(contenders, repeats, warmup)
        else:  # counting ran torch once; the chunks warm the others up
            times = interleaved_times(contenders, long_repeats, 0)
        table = {"gflop": gflop, "chunks": chunks}
        for name in interfaces:
            summary = ratio_summary(times, name, "torch_fp32")
            median = summary["numerator_s"]
            table[name] = {
                "seconds": median,
                "ratio": summary["ratio"],
                "speedup": 1 / summary["ratio"],
                "rtf": median / seconds,
                "gflops": gflop / median,
                "fraction_of_machine": gflop
                / median
                / results["machine_gflops"],
                "pair_ratios": summary["pair_ratios"],
            }
        fastest = max(interfaces, key=lambda name: table[name]["speedup"])
        table["fastest"] = fastest
        table["met"] = table[fastest]["speedup"] >= SPEEDUP_TARGET
        results[f"{seconds:g}s"] = table
    results["machine_gflops_end"] = matmul_gflops()
    return results


def format_deployment(results):
    """The printed table of :func:`deployment_rtf`."""
    lines = [
        f"separation, {results['threads']} threads; machine limit (fp32 "
        f"{MATMUL_SIZE}x{MATMUL_SIZE} matmul): {results['machine_gflops']:.0f} "
        f"GFLOP/s (after: {results['machine_gflops_end']:.0f})",
        f"{'input / path':26s} {'s':>8s} {'x torch':>8s} {'RTF':>6s} "
        f"{'GFLOP/s':>8s} {'of limit':>8s}",
    ]
    for key, table in results.items():
        if not isinstance(table, dict) or "gflop" not in table:
            continue
        lines.append(
            f"{key} ({table['chunks']} chunk(s), {table['gflop']:.1f} GFLOP):"
        )
        for name, _, _ in CONTENDERS:
            row = table[name]
            lines.append(
                f"  {name:24s} {row['seconds']:8.3f} {row['speedup']:8.2f} "
                f"{row['rtf']:6.3f} {row['gflops']:8.1f} "
                f"{100 * row['fraction_of_machine']:7.0f} %"
            )
        lines.append(
            f"  fastest: {table['fastest']} (target >= {SPEEDUP_TARGET} x "
            f"torch fp32: {MET[table['met']]})"
        )
    return "\n".join(lines)
