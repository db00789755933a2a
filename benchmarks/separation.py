"""Cost of separation: the unified model against SepFormer, and real-time
factors with torch and onnxruntime, fp32 and int8.

Every way of separating the same noisy mixture runs in the same rounds,
interleaved, each under ``torch.inference_mode``, after one untimed round
that also counts the arithmetic (``common.counted_gflop``):

* ``sepformer``: SpeechBrain's own ``SepformerSeparation.separate_batch`` on
  an Encoder, MaskNet and Decoder of the same sizes (the baseline hparams);
  inputs of one chunk only;
* ``torch_fp32``: gmsep's ``NoiseRobustSeparation.separate_long`` on the
  unified model (for one chunk it is ``separate_batch``): the reference of
  every ratio;
* ``torch_int8``: its dynamic int8 copy (``--quantize int8``);
* ``onnxruntime_fp32``: ``separator.onnx`` (``--backend onnxruntime``);
* ``onnxruntime_int8``: ``separator-int8.onnx``;
* ``torch_fp32_chunk_batch``: torch fp32 with ``CHUNK_BATCH`` chunks a call
  (``--chunk-batch``); inputs of several chunks only;
* ``machine``: fp32 matrix products of ``MATMUL_SIZE`` on the same threads,
  the machine's own limit, measured in every round, so that each row's
  fraction of it is taken at the same moment as the row.

Every row reports the time, its ratio to ``torch_fp32`` in the same round
(median over rounds), the real-time factor (time / audio seconds), the
GFLOP/s reached (the counted fp32 arithmetic of the unified separation,
matrix products and convolutions, the same for every path, over the time)
and that rate's fraction of the round's matrix-product rate. Speed does not
depend on the weights: the modules are freshly initialised.

On a GPU, :func:`separation_throughput` compares batched chunks and bf16.

Authors
 * gmsep contributors 2026
"""

import os
import statistics

import torch
from common import (
    SEPFORMER_HPARAMS,
    UNIFIED_HPARAMS,
    counted_gflop,
    interleaved_times,
    load_hparams,
    ratio_summary,
    synchronize,
)
from gmsep.inference.chunking import chunk_starts
from gmsep.inference.onnx_backend import export_onnx, si_snr_db
from gmsep.inference.pretrained import NoiseRobustSeparation
from gmsep.inference.quantize import quantize_onnx
from speechbrain.inference.separation import SepformerSeparation

PATHS = (
    ("torch_fp32", "torch", "none"),
    ("torch_int8", "torch", "int8"),
    ("onnxruntime_fp32", "onnxruntime", "none"),
    ("onnxruntime_int8", "onnxruntime", "int8"),
)
CHUNK_BATCH = 4
UNIFIED_TARGET = 1.15  # unified / sepformer
# The fastest path should be at least this much faster than torch fp32.
SPEEDUP_TARGET = 1.5
# Square fp32 products of this size run at the BLAS's sustained rate; a few
# of them (well under a second) make one reading of the limit.
MATMUL_SIZE = 2048
MATMUL_PRODUCTS = 3
MET = {True: "yes", False: "NO", None: "n/a (config not paper)"}


def build_interfaces(config, output_folder, device="cpu"):
    """The two separation interfaces of a benchmark configuration.

    Arguments
    ---------
    config : str
        A benchmark configuration ("paper", "small", "tiny").
    output_folder : str
        A temporary folder for the hparams' checkpointer.
    device : str
        "cpu" or "cuda".

    Returns
    -------
    unified : gmsep.inference.pretrained.NoiseRobustSeparation
    sepformer : speechbrain.inference.separation.SepformerSeparation
    """
    run_opts = {"device": device}
    unified_hparams = load_hparams(UNIFIED_HPARAMS, config, output_folder)
    separator = unified_hparams["separator"]
    unified = NoiseRobustSeparation(
        modules={
            name: getattr(separator, name)
            for name in ("encoder", "enhancer", "masknet", "decoder")
        },
        hparams={
            "sample_rate": unified_hparams["sample_rate"],
            "num_spks": unified_hparams["num_spks"],
            "separator": separator,
        },
        run_opts=run_opts,
    )
    baseline_hparams = load_hparams(SEPFORMER_HPARAMS, config, output_folder)
    sepformer = SepformerSeparation(
        modules={
            name: baseline_hparams[name]
            for name in ("encoder", "masknet", "decoder")
        },
        hparams={
            "sample_rate": baseline_hparams["sample_rate"],
            "num_spks": baseline_hparams["num_spks"],
        },
        run_opts=run_opts,
    )
    return unified, sepformer


def machine_limit(size=MATMUL_SIZE, products=MATMUL_PRODUCTS):
    """The machine's fp32 limit as a contender: ``products`` square matrix
    products on torch's threads.

    Returns
    -------
    run : callable
        Runs the products.
    gflop : float
        Their arithmetic: GFLOP/s = gflop / the time of ``run()``.

    Example
    -------
    >>> run, gflop = machine_limit(size=64, products=2)
    >>> run(); gflop == 2 * 2 * 64**3 / 1e9
    True
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)

    def run():
        for _ in range(products):
            torch.mm(a, b)

    return run, products * 2 * size**3 / 1e9


def _interface(unified, backend, quantize, folder, chunk_batch=1):
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
    interface.chunk_batch = chunk_batch
    return interface


def _separating(run_interface, mix, num_spks):
    """A contender separating ``mix``, its output's shape checked."""

    def run():
        with torch.inference_mode():
            est_sources = run_interface(mix)
        if est_sources.shape != (*mix.shape, num_spks):
            raise RuntimeError(
                f"separation returned shape {tuple(est_sources.shape)} for a "
                f"mixture of {tuple(mix.shape)}"
            )

    return run


def separation_benchmark(
    config, seconds_list, repeats, warmup, output_folder, long_repeats=1
):
    """Times every way of separating mixtures of each length, interleaved.

    Arguments
    ---------
    config : str
        A benchmark configuration ("paper", "small", "tiny").
    seconds_list : list of float
        Durations of the mixtures (8 kHz), one table each.
    repeats : int
        Timed rounds per duration that fits in one chunk.
    warmup : int
        Untimed rounds before those; the first (always run) counts the
        arithmetic.
    output_folder : str
        A temporary folder (hparams' checkpointer, the ONNX files).
    long_repeats : int
        Timed rounds, after the counted one, of a duration of several chunks
        (minutes a round at paper size on a 2-core CPU).

    Returns
    -------
    dict
        ``threads``; ``unified_vs_sepformer`` (``common.ratio_summary`` of
        the first one-chunk duration) and its ``gflop``; per duration
        (``"4s"``...): ``gflop`` (counted, per unified separation),
        ``chunks``, ``machine_gflops`` (median and per round) and per path
        ``seconds``, ``ratio`` (its time over torch fp32's, median of
        rounds), ``speedup``, ``rtf``, ``gflops``, ``fraction_of_machine``
        (median over rounds) and ``pair_ratios``; ``fastest`` and whether
        its speedup meets ``SPEEDUP_TARGET``.
    """
    unified, sepformer = build_interfaces(config, output_folder)
    onnx_file = os.path.join(output_folder, "separator.onnx")
    export_onnx(unified.separator, onnx_file)
    quantize_onnx(onnx_file, os.path.join(output_folder, "separator-int8.onnx"))
    interfaces = {
        name: _interface(unified, backend, quantize, output_folder)
        for name, backend, quantize in PATHS
    }
    batched = _interface(unified, "torch", "none", output_folder, CHUNK_BATCH)
    limit, limit_gflop = machine_limit()
    results = {"threads": torch.get_num_threads()}
    for seconds in seconds_list:
        mix = 0.1 * torch.randn(
            1,
            round(seconds * unified.sample_rate),
            generator=torch.Generator().manual_seed(0),
        )
        chunks = len(chunk_starts(mix.shape[-1], *unified.chunk_lengths()))
        contenders = {
            name: _separating(interface.separate_long, mix, unified.num_spks)
            for name, interface in interfaces.items()
        }
        if chunks == 1:
            contenders["sepformer"] = _separating(
                sepformer.separate_batch, mix, unified.num_spks
            )
        else:
            contenders["torch_fp32_chunk_batch"] = _separating(
                batched.separate_long, mix, unified.num_spks
            )
        contenders["machine"] = limit
        # the counted round is the first untimed one
        gflop = {
            name: counted_gflop(run)[0] for name, run in contenders.items()
        }
        if chunks == 1:
            times = interleaved_times(contenders, repeats, max(warmup - 1, 0))
        else:  # several chunks warm every path up within a round
            times = interleaved_times(contenders, long_repeats, 0)
        machine = [limit_gflop / t for t in times.pop("machine")]
        table = {
            "gflop": gflop["torch_fp32"],
            "chunks": chunks,
            "machine_gflops": {
                "median": statistics.median(machine),
                "per_round": machine,
            },
        }
        rows = [name for name in times if name != "sepformer"]
        for name in rows:
            summary = ratio_summary(times, name, "torch_fp32")
            median = summary["numerator_s"]
            table[name] = {
                "seconds": median,
                "ratio": summary["ratio"],
                "speedup": 1 / summary["ratio"],
                "rtf": median / seconds,
                "gflops": table["gflop"] / median,
                "fraction_of_machine": statistics.median(
                    table["gflop"] / t / m
                    for t, m in zip(times[name], machine, strict=True)
                ),
                "pair_ratios": summary["pair_ratios"],
            }
        fastest = max(rows, key=lambda name: table[name]["speedup"])
        table["fastest"] = fastest
        table["met"] = table[fastest]["speedup"] >= SPEEDUP_TARGET
        if "sepformer" in times and "unified_vs_sepformer" not in results:
            results["unified_vs_sepformer"] = ratio_summary(
                times, "torch_fp32", "sepformer", UNIFIED_TARGET
            )
            results["gflop"] = {
                "unified": gflop["torch_fp32"],
                "sepformer": gflop["sepformer"],
                "ratio": gflop["torch_fp32"] / gflop["sepformer"],
            }
        results[f"{seconds:g}s"] = table
    return results


def format_separation(results):
    """The printed table of :func:`separation_benchmark`."""
    lines = [
        f"separation, {results['threads']} threads: every path as a ratio to "
        "torch fp32 in the same rounds; machine limit: "
        f"{MATMUL_PRODUCTS} fp32 {MATMUL_SIZE}x{MATMUL_SIZE} products a round",
        f"{'input / path':30s} {'s':>8s} {'x torch':>8s} {'RTF':>6s} "
        f"{'GFLOP/s':>8s} {'of limit':>8s}",
    ]
    for key, table in results.items():
        if not isinstance(table, dict) or "chunks" not in table:
            continue
        machine = table["machine_gflops"]
        lines.append(
            f"{key} ({table['chunks']} chunk(s), {table['gflop']:.1f} GFLOP; "
            f"limit {machine['median']:.0f} GFLOP/s, "
            f"{min(machine['per_round']):.0f}-{max(machine['per_round']):.0f} "
            "over rounds):"
        )
        for name, row in table.items():
            if isinstance(row, dict) and "speedup" in row:
                lines.append(
                    f"  {name:28s} {row['seconds']:8.3f} {row['speedup']:8.2f} "
                    f"{row['rtf']:6.3f} {row['gflops']:8.1f} "
                    f"{100 * row['fraction_of_machine']:7.0f} %"
                )
        lines.append(
            f"  fastest: {table['fastest']} (target >= {SPEEDUP_TARGET} x "
            f"torch fp32: {MET[table['met']]})"
        )
    return "\n".join(lines)


def separation_throughput(
    unified,
    seconds,
    repeats,
    warmup,
    chunk_batch=8,
    device="cuda",
    chunk_seconds=None,
):
    """Batched chunks and bf16 on an accelerator: throughput of
    ``separate_long`` on a mixture of several chunks.

    Four contenders, interleaved: chunks one at a time or ``chunk_batch`` at
    a time, in fp32 or under bf16 autocast.

    Arguments
    ---------
    unified : gmsep.inference.pretrained.NoiseRobustSeparation
        The unified separator, on ``device``.
    seconds : float
        Duration of the mixture (8 kHz).
    repeats, warmup : int
        Timed and untimed rounds.
    chunk_batch : int
        Chunks a call in the batched contenders.
    device : str
        Where the modules are ("cuda"; "cpu" works too).
    chunk_seconds : float, optional
        Chunk length (default: that of ``separate_long``).

    Returns
    -------
    dict
        Contender (``fp32_chunk_batch_1``...) -> ``seconds`` (median),
        ``audio_s_per_s`` and ``si_snr_to_fp32_db`` (the SI-SNR of its output
        against the fp32 one-chunk-at-a-time output; None for that one);
        ``chunks``.
    """
    mix = 0.1 * torch.randn(
        1,
        round(seconds * unified.sample_rate),
        generator=torch.Generator().manual_seed(0),
    ).to(device)
    device_type = torch.device(device).type

    def separate(batch, dtype):
        unified.chunk_batch = batch
        with (
            torch.inference_mode(),
            torch.autocast(device_type, dtype=dtype, enabled=dtype is not None),
        ):
            est_sources = unified.separate_long(mix, chunk_seconds)
        synchronize(device)
        return est_sources

    def contender(batch, dtype):
        return lambda: separate(batch, dtype)

    contenders = {
        f"{precision}_chunk_batch_{batch}": contender(batch, dtype)
        for precision, dtype in (("fp32", None), ("bf16", torch.bfloat16))
        for batch in (1, chunk_batch)
    }
    times = interleaved_times(contenders, repeats, warmup, device)
    # what bf16 and batching change in the output: SI-SNR to fp32, one by one
    reference = separate(1, None).float()
    fidelity = {
        name: si_snr_db(separate(batch, dtype).float(), reference)
        for name, batch, dtype in (
            (f"fp32_chunk_batch_{chunk_batch}", chunk_batch, None),
            ("bf16_chunk_batch_1", 1, torch.bfloat16),
            (f"bf16_chunk_batch_{chunk_batch}", chunk_batch, torch.bfloat16),
        )
    }
    unified.chunk_batch = 1
    results = {
        name: {
            "seconds": statistics.median(runs),
            "audio_s_per_s": seconds / statistics.median(runs),
            "si_snr_to_fp32_db": fidelity.get(name),
        }
        for name, runs in times.items()
    }
    results["chunks"] = len(
        chunk_starts(mix.shape[-1], *unified.chunk_lengths(chunk_seconds))
    )
    return results
