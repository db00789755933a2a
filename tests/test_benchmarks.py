"""Smoke test of the benchmark suite (benchmarks/run.py) on the tiny config."""

import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_benchmark_runs_and_writes_its_json(tmp_path):
    report = tmp_path / "bench.json"
    completed = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "benchmarks", "run.py"),
            "--quick",
            "--skip",
            "memory",
            "long_recording",
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=tmp_path,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "train step: GM / plain multi-task" in completed.stdout

    results = json.loads(report.read_text())
    assert results["meta"]["config"] == "tiny"
    assert "memory" not in results and "long_recording" not in results
    training = results["training"]
    separation = results["separation"]
    # --quick: 2 timed rounds per ratio
    for summary in (
        training["gm_overhead"],
        training["unified_vs_sepformer"],
        separation["unified_vs_sepformer"],
    ):
        assert summary["ratio"] > 0 and len(summary["pair_ratios"]) == 2
        assert summary["met"] is None  # targets apply to the paper config
    # the EnhanceNet adds arithmetic to separation too
    gflop = separation["gflop"]
    assert gflop["unified"] > gflop["sepformer"] > 0
    assert gflop["ratio"] == pytest.approx(
        gflop["unified"] / gflop["sepformer"]
    )
    assert training["params"]["unified"] > training["params"]["sepformer"]
    assert set(training["page_faults_mib"]) == {
        "unified_gm",
        "unified_plain",
        "sepformer",
    }
    # Counted arithmetic (in the warm-up round): GM adds an SE backward, the
    # EnhanceNet its passes.
    flops = training["flops"]
    gflop = flops["gflop"]
    assert gflop["unified_gm"] > gflop["unified_plain"] > gflop["sepformer"] > 0
    assert flops["gm_overhead"] == pytest.approx(
        gflop["unified_gm"] / gflop["unified_plain"]
    )
    assert "FLOP" in completed.stdout and "host allocator" in completed.stdout
    parts = ("forward", "se_backward", "ss_backward", "gm_combine", "clip_adam")
    breakdown = results["breakdown"]
    assert breakdown["total"] == pytest.approx(sum(breakdown[p] for p in parts))
    assert "skipped" in results["gpu"] or "precisions" in results["gpu"]
    # separation: four ways, each as a ratio to torch fp32 and a fraction of
    # the machine's fp32 limit measured in the same rounds
    table = separation["1s"]
    machine = table["machine_gflops"]
    assert len(machine["per_round"]) == 2 and machine["median"] > 0
    assert table["torch_fp32"]["ratio"] == 1.0 and table["chunks"] == 1
    assert table["gflop"] == separation["gflop"]["unified"]
    for name in ("torch_int8", "onnxruntime_fp32", "onnxruntime_int8"):
        row = table[name]
        assert len(row["pair_ratios"]) == 2 and row["rtf"] > 0
        assert row["gflops"] == pytest.approx(table["gflop"] / row["seconds"])
        assert 0 < row["fraction_of_machine"]
    assert "torch_fp32_chunk_batch" not in table  # one chunk: nothing to batch
    assert table["fastest"] in table and table["met"] is None
    assert "onnxruntime_int8" in completed.stdout
    # nothing left behind in the working folder (e.g. checkpoint folders)
    assert os.listdir(tmp_path) == ["bench.json"]


def test_gpu_separation_throughput_runs_on_any_device(tmp_path):
    """The GPU section's batched-chunk and bf16 comparison, on the CPU: four
    contenders, and the outputs of batching (the same) and bf16 (close)
    against fp32 one chunk at a time."""
    sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
    try:
        from separation import build_interfaces, separation_throughput
    finally:
        sys.path.pop(0)
    unified, _ = build_interfaces("tiny", str(tmp_path))
    results = separation_throughput(
        unified,
        3.0,
        repeats=1,
        warmup=0,
        chunk_batch=2,
        device="cpu",
        chunk_seconds=2.0,
    )
    assert results["chunks"] == 2
    names = [f"{p}_chunk_batch_{b}" for p in ("fp32", "bf16") for b in (1, 2)]
    assert set(results) == {*names, "chunks"}
    for name in names:
        assert results[name]["audio_s_per_s"] > 0
    assert results["fp32_chunk_batch_1"]["si_snr_to_fp32_db"] is None
    assert results["fp32_chunk_batch_2"]["si_snr_to_fp32_db"] > 80
    assert 15 < results["bf16_chunk_batch_1"]["si_snr_to_fp32_db"] < 80
    assert unified.chunk_batch == 1  # left as it was
