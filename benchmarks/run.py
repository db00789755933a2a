#!/usr/bin/env python3
"""The benchmark suite: what gradient modulation and the unified model cost.

Every figure is a ratio of two contenders measured side by side in this
process, interleaved, after a warm-up; medians are reported:

* GM training step / plain multi-task step (same model, same batch), and
  where the time of a GM step goes (forward, SE and SS backward passes, GM
  arithmetic, clipping and Adam);
* unified model training step (GM) / SepFormer-alone training step;
* the same two ratios in arithmetic: the FLOPs of each step, counted in the
  first untimed round (what bounds the timed ratios);
* separation (``separation``): unified / SpeechBrain's SepformerSeparation
  (same MaskNet), and real-time factors with torch and onnxruntime, fp32
  and int8, as ratios to torch fp32 and as fractions of the machine's fp32
  matrix-product rate measured in the same rounds (60 s inputs, and batched
  chunks, with ``--long-inputs``);
* peak memory of a training step, unified vs SepFormer (each model in a
  process of its own), and of long-recording separation
  (``benchmarks/long_recording.py``, when present);
* on a GPU: training throughput in fp32 and bf16, the estimated wall time
  of the paper's recipe, and separation throughput of a long recording,
  chunks one at a time or batched, fp32 and bf16.

On a quiet 2-core CPU the defaults take about 6 minutes at paper size.

Usage::

    python benchmarks/run.py                 # paper configuration, 4 s items
    python benchmarks/run.py --quick         # tiny configuration, seconds
    python benchmarks/run.py --config small --repeats 3 --json results/small.json
    python benchmarks/run.py --skip memory long_recording training breakdown --long-inputs

Authors
 * gmsep contributors 2026
"""

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import torch
from common import REPO_ROOT
from separation import (
    build_interfaces,
    format_separation,
    separation_benchmark,
    separation_throughput,
)
from training_step import (
    gm_step_breakdown,
    make_contenders,
    training_step_ratios,
    training_throughput,
)

BENCHMARKS = os.path.join(REPO_ROOT, "benchmarks")
LONG_RECORDING = os.path.join(BENCHMARKS, "long_recording.py")
MET = {True: "yes", False: "NO", None: "n/a (config not paper)"}
SECTIONS = (
    "memory",
    "long_recording",
    "training",
    "breakdown",
    "separation",
    "gpu",
)
LONG_INPUT_SECONDS = 60.0
# The breakdown's steps run on the training section's Brain, warmed up.
BREAKDOWN_STEPS = 2
# GPU separation: a long recording in chunks, one at a time or batched.
GPU_SEPARATION_SECONDS = 240.0
GPU_CHUNK_BATCH = 8
# glibc's malloc settings: `make bench` keeps freed memory in the process.
ALLOCATOR_VARIABLE = "GLIBC_TUNABLES"

# The paper's recipe: Libri2Mix train-360, wav8k/min, 120 epochs. LibriMix's
# storage listing (metadata/Libri2Mix/storage_info.txt of its repository)
# gives 6.8 GiB for wav8k/min/train-360/mix_both, 16-bit PCM at 8 kHz
# (du -h rounds up): about 127 h, 9.0 s per mixture on average. The often
# quoted 212 h is the "max" version.
TRAIN_360_MIXTURES = 50_800
TRAIN_360_SECONDS = 6.8 * 2**30 / 2 / 8000
PAPER_EPOCHS = 120
MEAN_TRAIN_ITEM_SECONDS = TRAIN_360_SECONDS / TRAIN_360_MIXTURES


def parse_arguments(argv):
    """The command line; ``--quick`` sets the tiny configuration."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny configuration, 1 s items, 2 repetitions, a 1-minute long "
        "recording: a smoke run (the targets are for the paper configuration)",
    )
    parser.add_argument("--config", choices=("paper", "small"), default="paper")
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="duration of the 8 kHz items"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed rounds per ratio (5 narrow the spread; about 1 min more "
        "a round at paper size on a 2-core CPU)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed rounds before; the first one, always run, counts the "
        "arithmetic",
    )
    parser.add_argument(
        "--long-recording",
        choices=("tiny", "paper"),
        default="tiny",
        help="model of the long-recording benchmark (10 min vs 30 s of audio): "
        "the demo model (minutes on CPU) or the paper's (much longer on CPU)",
    )
    parser.add_argument(
        "--long-inputs",
        action="store_true",
        help=f"separation section: also {LONG_INPUT_SECONDS:g} s inputs, "
        "with chunks batched too (about 10 minutes on a 2-core CPU at paper "
        "size)",
    )
    parser.add_argument(
        "--skip",
        nargs="+",
        choices=SECTIONS,
        default=[],
        help="sections not to run",
    )
    parser.add_argument(
        "--json",
        default=os.path.join("results", "bench.json"),
        help="where the results are written",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.config, args.seconds = "tiny", 1.0
        args.repeats, args.warmup = min(args.repeats, 2), min(args.warmup, 1)
        args.long_recording = "tiny"
    if args.seconds <= 0.1 or args.repeats < 1 or args.warmup < 0:
        parser.error(
            "expected --seconds > 0.1, --repeats >= 1 and --warmup >= 0, got "
            f"{args.seconds}, {args.repeats}, {args.warmup}"
        )
    return args


def run_script(command, timeout=1200):
    """Runs a benchmark script in a process of its own.

    Returns
    -------
    str
        Its standard output.

    Raises
    ------
    RuntimeError
        With the end of its error output, when it fails.
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed (exit {completed.returncode}): "
            f"{completed.stderr.strip()[-2000:]}"
        )
    return completed.stdout


def memory_section(args):
    """Peak memory of the training steps of each model, one process each."""
    results = {}
    for model in ("unified", "sepformer"):
        stdout = run_script(
            [
                os.path.join(BENCHMARKS, "training_step.py"),
                "--memory",
                model,
                "--config",
                args.config,
                "--seconds",
                str(args.seconds),
            ]
        )
        results[model] = json.loads(stdout.strip().splitlines()[-1])
    results["ratio"] = (
        results["unified"]["step_bytes"] / results["sepformer"]["step_bytes"]
    )
    return results


def long_recording_section(args):
    """The long-recording benchmark's own JSON report."""
    if not os.path.isfile(LONG_RECORDING):
        return {
            "skipped": f"{os.path.relpath(LONG_RECORDING, REPO_ROOT)} not found"
        }
    with tempfile.TemporaryDirectory() as folder:
        report = os.path.join(folder, "long_recording.json")
        command = [LONG_RECORDING, "--json", report]
        if args.long_recording == "tiny":
            command.append("--tiny")
        if args.quick:
            command += ["--minutes", "1"]
        run_script(command)
        with open(report, encoding="utf-8") as fin:
            return json.load(fin)


def gpu_section(args, output_folder):
    """Training throughput on the GPU, the paper recipe's wall time, and
    separation throughput with batched chunks and bf16."""
    if not torch.cuda.is_available():
        return {"skipped": "no GPU"}
    seconds = (
        MEAN_TRAIN_ITEM_SECONDS if args.config == "paper" else args.seconds
    )
    throughput = training_throughput(
        args.config, seconds, args.repeats, args.warmup, output_folder
    )
    for figures in throughput.values():
        figures["recipe_hours"] = (
            PAPER_EPOCHS * TRAIN_360_SECONDS / figures["audio_s_per_s"] / 3600
        )
    return {
        "device": torch.cuda.get_device_name(),
        "item_seconds": seconds,
        "recipe": (
            f"{PAPER_EPOCHS} epochs of Libri2Mix train-360 wav8k/min "
            f"({TRAIN_360_MIXTURES} mixtures, {TRAIN_360_SECONDS / 3600:.0f} h), "
            "batch 1, training steps only (no validation)"
        ),
        "precisions": throughput,
        "separation": separation_throughput(
            build_interfaces(args.config, output_folder, "cuda")[0],
            GPU_SEPARATION_SECONDS,
            args.repeats,
            args.warmup,
            GPU_CHUNK_BATCH,
        ),
    }


def run_sections(args):
    """Runs every section not skipped; a failing section is reported, the
    others still run."""
    results = {}
    with tempfile.TemporaryDirectory() as output_folder:
        # one Brain of each model for the training and breakdown sections
        contenders = functools.cache(
            lambda: make_contenders(args.config, args.seconds, output_folder)
        )
        sections = {
            # processes of their own first, while this one is still small
            "memory": lambda: memory_section(args),
            "long_recording": lambda: long_recording_section(args),
            "training": lambda: training_step_ratios(
                contenders(), args.repeats, args.warmup
            ),
            "breakdown": lambda: gm_step_breakdown(
                contenders().unified,
                contenders().batch,
                min(args.repeats, BREAKDOWN_STEPS),
                warmup=0 if "training" in results else 1,
            ),
            "separation": lambda: separation_benchmark(
                args.config,
                [args.seconds]
                + ([LONG_INPUT_SECONDS] if args.long_inputs else []),
                args.repeats,
                args.warmup,
                output_folder,
            ),
            "gpu": lambda: gpu_section(args, output_folder),
        }
        for name, run in sections.items():
            if name in args.skip:
                continue
            print(f"[bench] {name} ...", flush=True)
            start = time.perf_counter()
            try:
                results[name] = run()
            except (
                RuntimeError,
                OSError,
                ValueError,
                subprocess.TimeoutExpired,
            ) as err:
                results[name] = {"error": str(err)}
            results[name]["wall_s"] = time.perf_counter() - start
            if args.config != "paper":
                # the targets are for the paper configuration only
                for summary in results[name].values():
                    if isinstance(summary, dict) and "met" in summary:
                        summary["met"] = None
    return results


def format_ratio_rows(results):
    """Table rows: name, A and B seconds, A/B, the same ratio in counted
    FLOPs where there is one, target, met, and the range of the per-round
    ratios."""
    rows = []
    training = results.get("training", {})
    flops = training.get("flops", {})
    if "gm_overhead" in training:
        rows.append(
            (
                "train step: GM / plain multi-task",
                training["gm_overhead"],
                flops.get("gm_overhead"),
            )
        )
        rows.append(
            (
                "train step: unified (GM) / SepFormer",
                training["unified_vs_sepformer"],
                flops.get("unified_vs_sepformer"),
            )
        )
    separation = results.get("separation", {})
    if "unified_vs_sepformer" in separation:
        rows.append(
            (
                "separation: unified / SB SepformerSeparation",
                separation["unified_vs_sepformer"],
                separation["gflop"]["ratio"],
            )
        )
    lines = [
        f"{'ratio (median over interleaved rounds)':46s} {'A s':>8s} {'B s':>8s} "
        f"{'A/B':>6s} {'FLOP':>6s} {'target':>7s}  {'met':4s} rounds"
    ]
    for name, summary, flop_ratio in rows:
        flop_text = "-" if flop_ratio is None else f"{flop_ratio:.3f}"
        pairs = summary["pair_ratios"]
        lines.append(
            f"{name:46s} {summary['numerator_s']:8.3f} "
            f"{summary['denominator_s']:8.3f} {summary['ratio']:6.3f} "
            f"{flop_text:>6s} {summary['target']:7.2f}  "
            f"{MET[summary['met']]:4s} {min(pairs):.3f}-{max(pairs):.3f}"
        )
    return lines


def format_report(results, meta):
    """The printed summary of all sections."""
    lines = [
        f"gmsep benchmarks: config {meta['config']}, {meta['seconds']} s items at "
        f"8 kHz, batch 1, {meta['repeats']} rounds after {max(meta['warmup'], 1)} "
        "warm-up (counting the arithmetic); "
        f"torch {meta['torch']}, {meta['threads']} threads, load average "
        f"{meta['load_average_start'][0]:.1f} -> {meta['load_average_end'][0]:.1f}; "
        f"host allocator: {meta['allocator']}",
        "",
        *format_ratio_rows(results),
    ]
    training = results.get("training", {})
    if "params" in training:
        params = training["params"]
        lines.append(
            f"parameters: unified {params['unified'] / 1e6:.2f} M, SepFormer "
            f"{params['sepformer'] / 1e6:.2f} M"
        )
        faults = ", ".join(
            f"{name} {mib:.0f} MiB"
            for name, mib in training["page_faults_mib"].items()
        )
        lines.append(
            f"memory mapped in afresh per step (page faults): {faults}"
        )
    flops = training.get("flops", {})
    if "gflop" in flops:
        lines.append(
            "counted arithmetic per step (matrix products and convolutions): "
            + ", ".join(
                f"{name} {gflop:.1f} GFLOP"
                for name, gflop in flops["gflop"].items()
            )
        )
    breakdown = results.get("breakdown", {})
    if "total" in breakdown:
        lines.append("")
        lines.append("where a GM training step's time goes (median s, share):")
        for part, seconds in breakdown.items():
            if part not in ("total", "wall_s"):
                lines.append(
                    f"  {part:12s} {seconds:8.3f}  "
                    f"{100 * seconds / breakdown['total']:5.1f} %"
                )
    memory = results.get("memory", {})
    if "ratio" in memory:
        lines.append("")
        lines.append(
            "peak memory of a training step (RSS over the built model, own process):"
        )
        for model in ("unified", "sepformer"):
            figures = memory[model]
            lines.append(
                f"  {model:10s} step {figures['step_bytes'] / 2**30:6.2f} GiB, "
                f"process peak {figures['peak_bytes'] / 2**30:6.2f} GiB"
            )
        lines.append(f"  ratio unified / SepFormer: {memory['ratio']:.3f}")
    separation = results.get("separation", {})
    if "threads" in separation:
        lines.append("")
        lines.append(format_separation(separation))
    for name in ("long_recording", "gpu"):
        if name in results:
            section = {k: v for k, v in results[name].items() if k != "wall_s"}
            lines.append("")
            lines.append(f"{name}: {json.dumps(section, indent=1)}")
    for name, section in results.items():
        if "error" in section:
            lines.append(f"\n{name} FAILED: {section['error']}")
    return "\n".join(lines)


def main(argv=None):
    args = parse_arguments(argv)
    meta = {
        "config": args.config,
        "seconds": args.seconds,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_start": os.getloadavg(),
        "allocator": os.environ.get(ALLOCATOR_VARIABLE) or "default",
    }
    results = run_sections(args)
    meta["load_average_end"] = os.getloadavg()
    print(format_report(results, meta))
    if meta["allocator"] == "default" and sys.platform.startswith("linux"):
        print(
            "note: glibc gives large freed blocks back to the system and every "
            "step maps them in again (page faults above); `make bench` sets "
            f"{ALLOCATOR_VARIABLE} to keep them, as PyTorch's caching allocator "
            "does on a GPU"
        )
    if max(meta["load_average_start"][0], meta["load_average_end"][0]) > (
        os.cpu_count() or 1
    ):
        print(
            "note: other processes kept the CPUs busy: the ratios (interleaved) "
            "stay comparable, the absolute times do not"
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fout:
        json.dump({"meta": meta, **results}, fout, indent=1)
    print(f"results written to {args.json}")
    return 1 if any("error" in section for section in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
