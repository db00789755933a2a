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
    inference = results["inference"]
    # --quick: 2 rounds per training ratio, twice as many for separation
    for summary, rounds in (
        (training["gm_overhead"], 2),
        (training["unified_vs_sepformer"], 2),
        (inference["unified_vs_sepformer"], 4),
    ):
        assert summary["ratio"] > 0 and len(summary["pair_ratios"]) == rounds
        assert summary["met"] is None  # targets apply to the paper config
    # the EnhanceNet adds arithmetic to separation too
    assert inference["gflop"]["unified"] > inference["gflop"]["sepformer"] > 0
    assert training["params"]["unified"] > training["params"]["sepformer"]
    assert set(training["page_faults_mib"]) == {
        "unified_gm",
        "unified_plain",
        "sepformer",
    }
    # Counted arithmetic: GM adds an SE backward, the EnhanceNet its passes.
    gflop = results["flops"]["gflop"]
    assert gflop["unified_gm"] > gflop["unified_plain"] > gflop["sepformer"] > 0
    assert results["flops"]["gm_overhead"] == pytest.approx(
        gflop["unified_gm"] / gflop["unified_plain"]
    )
    assert "FLOP" in completed.stdout and "host allocator" in completed.stdout
    parts = ("forward", "se_backward", "ss_backward", "gm_combine", "clip_adam")
    breakdown = results["breakdown"]
    assert breakdown["total"] == pytest.approx(sum(breakdown[p] for p in parts))
    assert "skipped" in results["gpu"] or "precisions" in results["gpu"]
    # separation: four ways, each as a ratio to torch fp32 and a fraction of
    # the machine's measured fp32 limit
    deploy = results["deploy"]
    assert deploy["machine_gflops"] > 0
    table = deploy["1s"]
    assert table["torch_fp32"]["ratio"] == 1.0 and table["chunks"] == 1
    for name in ("torch_int8", "onnxruntime_fp32", "onnxruntime_int8"):
        row = table[name]
        assert len(row["pair_ratios"]) == 2 and row["rtf"] > 0
        assert row["gflops"] == pytest.approx(table["gflop"] / row["seconds"])
    assert table["fastest"] in table and table["met"] is None
    assert "onnxruntime_int8" in completed.stdout
    # nothing left behind in the working folder (e.g. checkpoint folders)
    assert os.listdir(tmp_path) == ["bench.json"]
