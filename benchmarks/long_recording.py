#!/usr/bin/env python3
"""Benchmark: chunked separation of a long recording on CPU.

Separates a synthetic 10-minute 8 kHz recording and a 30-second one with the
paper-size model (random weights: speed and memory do not depend on them),
chunk by chunk (gmsep.inference.chunking), and prints for each the real-time factor
(processing time / audio duration) and the peak memory. Each case runs in its
own process so that the peaks do not mix; the peak is the process's maximum
resident set size minus its resident size just before separating (model
built, recording generated, warm-up chunk done). Its working memory is that
peak less the separated sources it returns (B, T, S): with chunking it must
not grow with the recording's length (resident-memory readings vary by some
10 MiB from run to run with glibc's default allocator settings).

Usage:
> python benchmarks/long_recording.py                 # paper size, a few minutes
> python benchmarks/long_recording.py --tiny          # hparams/demo.yaml, seconds
> python benchmarks/long_recording.py --minutes 2 --json bench.json

Authors
 * gmsep contributors 2026
"""

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from gmsep.inference.chunking import (
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_OVERLAP_SECONDS,
    chunk_starts,
    separate_in_chunks,
)
from gmsep.inference.export import inference_hparams
from hyperpyyaml import load_hyperpyyaml

PAPER_CONFIG = "hparams/sepformer-gm-libri2mix.yaml"
TINY_CONFIG = "hparams/demo.yaml"


def current_rss_mib():
    """Resident memory now (Linux /proc); the peak so far elsewhere."""
    try:
        with open("/proc/self/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mib()


def peak_rss_mib():
    """Peak resident memory of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def synthetic_recording(seconds, sample_rate, seed=0, block_seconds=10.0):
    """Two "speakers" (amplitude-modulated harmonic tones with changing pitch)
    plus noise: speech-like enough to exercise the model, made in Python alone.

    Written block by block into one float32 array, so that making a long
    recording needs no recording-sized temporaries (they would set the
    process's peak memory before separation starts).

    Returns the mixture, shape 1, T.
    """
    generator = torch.Generator().manual_seed(seed)
    length = round(seconds * sample_rate)
    block = round(block_seconds * sample_rate)
    mix = torch.empty(length)
    voices = ((140.0, 3.0), (220.0, 4.3))  # pitch (Hz), syllable rate (Hz)
    phases = [0.0] * len(voices)  # each voice's phase at the block's start
    for start in range(0, length, block):
        t = torch.arange(start, min(start + block, length)) / sample_rate
        part = 0.05 * torch.randn(t.shape, generator=generator)
        for v, (pitch, rate) in enumerate(voices):
            f0 = pitch * (1 + 0.1 * torch.sin(2 * math.pi * 0.2 * t))
            phase = phases[v] + 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
            phases[v] = phase[-1].item()
            envelope = 0.5 * (1 + torch.sin(2 * math.pi * rate * t)) ** 2
            part += (
                envelope
                * sum(torch.sin(k * phase) / k for k in range(1, 6))
                / 4
            )
        mix[start : start + t.numel()] = part
    return mix.unsqueeze(0)


def build_separator(config):
    """The config's UnifiedSeparator, random weights, in eval mode.

    Only the inference modules are built (as in an exported folder): the
    training objects of the recipe are not needed here.
    """
    text = inference_hparams(config, {"data_folder": "unused"})
    hparams = load_hyperpyyaml(text)
    return hparams["separator"].eval(), hparams["sample_rate"]


def run_case(config, seconds, chunk_seconds, overlap_seconds):
    """Separates one synthetic recording; returns its measurements."""
    separator, sample_rate = build_separator(config)
    mix = synthetic_recording(seconds, sample_rate)
    chunk = round(chunk_seconds * sample_rate)
    overlap = round(overlap_seconds * sample_rate)
    with torch.inference_mode():
        separator.separate(mix[:, : min(chunk, mix.shape[1])])  # warm-up
        rss_before = current_rss_mib()
        start = time.perf_counter()
        est_sources = separate_in_chunks(
            separator.separate, mix, chunk, overlap
        )
        elapsed = time.perf_counter() - start
    peak = peak_rss_mib()  # before the check below allocates its own array
    assert torch.isfinite(est_sources).all()
    output_mib = est_sources.numel() * est_sources.element_size() / 2**20
    return {
        "seconds": seconds,
        "chunks": len(chunk_starts(mix.shape[1], chunk, overlap)),
        "params_m": sum(p.numel() for p in separator.parameters()) / 1e6,
        "elapsed_s": elapsed,
        "rtf": elapsed / seconds,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak,
        "peak_delta_mib": peak - rss_before,
        "output_mib": output_mib,
        # what separating needs beyond the recording-sized result it returns
        "working_mib": peak - rss_before - output_mib,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="long recording"
    )
    parser.add_argument("--short-seconds", type=float, default=30.0)
    parser.add_argument(
        "--model-config", default=None, help=f"default {PAPER_CONFIG}"
    )
    parser.add_argument(
        "--tiny", action="store_true", help=f"use {TINY_CONFIG} (a quick check)"
    )
    parser.add_argument(
        "--chunk-seconds", type=float, default=DEFAULT_CHUNK_SECONDS
    )
    parser.add_argument(
        "--overlap-seconds", type=float, default=DEFAULT_OVERLAP_SECONDS
    )
    parser.add_argument(
        "--json", default=None, help="also write the results here"
    )
    parser.add_argument("--case-seconds", type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    config = args.model_config or (TINY_CONFIG if args.tiny else PAPER_CONFIG)
    if args.case_seconds is not None:  # one case, in its own process
        result = run_case(
            config, args.case_seconds, args.chunk_seconds, args.overlap_seconds
        )
        print(json.dumps(result))
        return

    results = []
    for seconds in (args.short_seconds, 60 * args.minutes):
        command = [sys.executable, __file__, "--model-config", config]
        command += ["--chunk-seconds", str(args.chunk_seconds)]
        command += ["--overlap-seconds", str(args.overlap_seconds)]
        command += ["--case-seconds", str(seconds)]
        print(f"separating {seconds:.0f} s with {config} ...", flush=True)
        done = subprocess.run(
            command, capture_output=True, text=True, check=True
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))

    print(
        f"\n{config}: {results[0]['params_m']:.1f} M parameters, chunks of "
        f"{args.chunk_seconds} s with {args.overlap_seconds} s overlap, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"{'audio (s)':>10} {'chunks':>7} {'time (s)':>9} {'RTF':>7} "
        f"{'peak RSS (MiB)':>15} {'peak - before (MiB)':>20} {'output (MiB)':>13} "
        f"{'working (MiB)':>14}"
    )
    for r in results:
        print(
            f"{r['seconds']:>10.0f} {r['chunks']:>7} {r['elapsed_s']:>9.1f} "
            f"{r['rtf']:>7.3f} {r['peak_rss_mib']:>15.0f} "
            f"{r['peak_delta_mib']:>20.0f} {r['output_mib']:>13.1f} "
            f"{r['working_mib']:>14.1f}"
        )
    short, long = results
    ratios = {
        "peak_rss_ratio": long["peak_rss_mib"] / short["peak_rss_mib"],
        "peak_delta_ratio": long["peak_delta_mib"]
        / max(short["peak_delta_mib"], 1.0),
        "working_ratio": long["working_mib"] / max(short["working_mib"], 1.0),
        "rtf_ratio": long["rtf"] / short["rtf"],
    }
    print(
        f"long / short: peak RSS x{ratios['peak_rss_ratio']:.2f}, peak above "
        f"baseline x{ratios['peak_delta_ratio']:.2f}, working memory "
        f"x{ratios['working_ratio']:.2f}, RTF x{ratios['rtf_ratio']:.2f} "
        f"(audio x{long['seconds'] / short['seconds']:.0f})"
    )
    if args.json:
        summary = {"config": config, "cases": results, **ratios}
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
