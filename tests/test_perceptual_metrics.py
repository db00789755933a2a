"""PESQ and STOI (gmsep.evaluation.metrics): the packages' values on a fixed
pair of synthetic utterances, their maxima on identical signals, the speaker
matching, and the utterances on which they are undefined."""

import csv
import json
import math
import os

import numpy as np
import pesq
import pystoi
import pytest
import soundfile as sf
import torch
from gmsep.cli import main
from gmsep.evaluation.metrics import (
    UndefinedMetric,
    perceptual_metrics,
    pesq_score,
    stoi_score,
)
from gmsep.inference.export import export_pretrained
from gmsep.training.brain import NoiseRobustSeparationBrain
from gmsep.training.config_checks import ConfigError, check_config
from gmsep.training.experiment import load_experiment
from speechbrain.dataio.batch import PaddedBatch
from tiny_config import REPO, TINY_MODEL, make_experiment

from recipes.demo_speech import make_speaker, synthesize_utterance

DEMO = os.path.join(REPO, "hparams", "demo.yaml")

# Computed once with pesq 0.0.4 and pystoi 0.4.1 called directly on pair().
KNOWN = {
    8000: {"pesq": 2.0553691387176514, "stoi": 0.9622555270655092},
    16000: {"pesq": 1.1766388416290283, "stoi": 0.9604071554782477},
}
# The packages' maxima: P.862.1 (narrow band) and P.862.2 (wide band) MOS-LQO
MAXIMA = {8000: 4.548638343811035, 16000: 4.643888473510742}


def utterance(speaker, f0, seed, rate, seconds=2.0):
    voice = make_speaker(speaker, f0, np.random.default_rng(seed))
    return synthesize_utterance(
        voice, seconds, rate, np.random.default_rng(seed + 1)
    )


def pair(rate):
    """A reference and a degraded copy: another talker and noise added."""
    reference = utterance(19, 120.0, 0, rate)
    other = utterance(40, 210.0, 2, rate)
    noise = np.random.default_rng(4).standard_normal(reference.size)
    return reference, reference + 0.3 * other + 0.1 * noise


@pytest.mark.parametrize("rate, mode", [(8000, "nb"), (16000, "wb")])
def test_the_wrapper_reproduces_the_packages(rate, mode):
    reference, degraded = pair(rate)
    ours = {
        "pesq": pesq_score(reference, degraded, rate),
        "stoi": stoi_score(reference, degraded, rate),
    }
    direct = {
        "pesq": pesq.pesq(rate, reference, degraded, mode),
        "stoi": pystoi.stoi(reference, degraded, rate),
    }
    assert ours == pytest.approx(direct, abs=1e-9)
    assert ours == pytest.approx(KNOWN[rate], abs=1e-3)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_identical_signals_score_the_maxima(rate):
    reference, _ = pair(rate)
    assert pesq_score(reference, reference, rate) == pytest.approx(
        MAXIMA[rate], abs=1e-4
    )
    assert stoi_score(reference, reference, rate) == pytest.approx(1.0)


def test_other_rates_are_scored_wide_band_at_16k():
    reference, degraded = pair(16000)
    at_32k = [np.repeat(x, 2) for x in (reference, degraded)]
    # the same speech at 32 kHz: close to its 16 kHz wide-band score
    assert pesq_score(*at_32k, 32000) == pytest.approx(
        KNOWN[16000]["pesq"], abs=0.3
    )


def test_speakers_are_matched_before_scoring():
    reference, degraded = pair(8000)
    other = utterance(40, 210.0, 2, 8000)
    sources = torch.from_numpy(np.stack([reference, other], -1))  # T, 2
    estimates = torch.from_numpy(np.stack([other, degraded], -1))  # swapped
    values, reasons = perceptual_metrics(
        estimates, sources, 8000, ["pesq", "stoi"]
    )
    assert reasons == {}
    expected = {  # the swapped speaker is identical to its reference
        "pesq": (pesq_score(reference, degraded, 8000) + MAXIMA[8000]) / 2,
        "stoi": (stoi_score(reference, degraded, 8000) + 1.0) / 2,
    }
    assert values == pytest.approx(expected)


def test_short_utterances_are_undefined_not_scored():
    # 0.3 s: pystoi returns 1e-5 (under 30 frames); PESQ finds it too short
    reference = utterance(19, 120.0, 0, 8000, seconds=0.3)
    with pytest.raises(UndefinedMetric, match="STOI: fewer than 30 frames"):
        stoi_score(reference, reference, 8000)
    assert pystoi.stoi(reference, reference, 8000) == 1e-5
    silent = np.zeros(16000)
    with pytest.raises(UndefinedMetric, match="PESQ"):
        pesq_score(silent, silent + 1e-3, 8000)
    sources = torch.from_numpy(np.stack([reference, reference[::-1]], -1))
    values, reasons = perceptual_metrics(sources, sources, 8000, ["stoi"])
    assert math.isnan(values["stoi"]) and list(reasons) == ["stoi"]


def test_a_missing_package_is_named_before_training(monkeypatch, tmp_path):
    hparams, _ = load_experiment(
        DEMO, {"data_folder": REPO, "output_folder": str(tmp_path)}
    )
    monkeypatch.setattr(
        "gmsep.evaluation.metrics.importlib.util.find_spec",
        lambda name: None if name == "pystoi" else object(),
    )
    with pytest.raises(ConfigError, match="test_stoi: True, but the pystoi"):
        check_config(hparams, {"device": "cpu"})
    hparams["test_stoi"] = False
    check_config(hparams, {"device": "cpu"})


def speech_items(lengths, rate=8000):
    """Two-speaker noisy mixtures of synthetic speech, one per length (s)."""
    items = []
    for i, seconds in enumerate(lengths):
        s1 = 0.1 * utterance(19, 120.0, 10 * i, rate, seconds)
        s2 = 0.1 * utterance(40, 210.0, 10 * i + 5, rate, seconds)
        noise = 0.01 * np.random.default_rng(i).standard_normal(s1.size)
        items.append(
            {
                "id": f"utt{i}",
                **{
                    f"{name}_sig": torch.from_numpy(signal).float()
                    for name, signal in (
                        ("mix", s1 + s2 + noise),
                        ("s1", s1),
                        ("s2", s2),
                        ("noise", noise),
                        ("clean", s1 + s2),
                    )
                },
            }
        )
    return items


@pytest.mark.parametrize("switched_off", [(), ("pesq",), ("pesq", "stoi")])
def test_the_test_stage_writes_pesq_and_stoi(
    tmp_path, switched_off, one_thread
):
    overrides = {**TINY_MODEL, "output_folder": str(tmp_path)}
    overrides.update({f"test_{name}": False for name in switched_off})
    hparams, _ = load_experiment(DEMO, overrides)
    brain = NoiseRobustSeparationBrain(
        modules=hparams["modules"], hparams=hparams, run_opts={"device": "cpu"}
    )
    # the last one is too short for STOI
    items = speech_items([2.0, 1.5, 0.3])
    brain.evaluate(
        items, progressbar=False, test_loader_kwargs={"collate_fn": PaddedBatch}
    )
    with open(tmp_path / "test_results.csv", newline="") as fin:
        rows = list(csv.DictReader(fin))
    expected = [n for n in ("pesq", "stoi") if n not in switched_off]
    assert (
        list(rows[0])
        == ["snt_id", "sdr", "sdr_i", "si-snr", "si-snr_i"] + expected
    )
    assert [row["snt_id"] for row in rows] == ["utt0", "utt1", "utt2", "avg"]
    for item, row in zip(items, rows, strict=False):
        # the values of the wrapper on what the network estimated
        with torch.no_grad():
            est = brain.hparams.separator.separate(item["mix_sig"][None])[0]
        sources = torch.stack([item["s1_sig"], item["s2_sig"]], -1)
        values, _ = perceptual_metrics(est, sources, 8000, expected)
        for name in expected:
            assert float(row[name]) == pytest.approx(values[name], nan_ok=True)
    for name in expected:
        defined = [float(row[name]) for row in rows[:3]]
        defined = [value for value in defined if math.isfinite(value)]
        assert float(rows[3][name]) == pytest.approx(np.mean(defined))
        assert len(defined) >= 2 and 0 < min(defined)
        assert max(defined) < (1.0 if name == "stoi" else 4.55)
    if "stoi" in expected:
        assert math.isnan(float(rows[2]["stoi"]))


def test_evaluate_scores_pesq_and_stoi_unless_switched_off(tmp_path, capsys):
    exp_dir, _ = make_experiment(tmp_path)
    model = export_pretrained(exp_dir, tmp_path / "pretrained")
    rows = []
    for item in speech_items([2.0, 1.5, 0.3]):
        row = {"ID": item["id"]}
        for name in ("mix", "s1", "s2"):
            path = tmp_path / f"{item['id']}_{name}.wav"
            sf.write(path, item[f"{name}_sig"].numpy(), 8000)
            row[f"{name}_wav"] = str(path)
        rows.append(row)
    csv_path = tmp_path / "test.csv"
    with open(csv_path, "w", newline="") as fout:
        writer = csv.DictWriter(fout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    argv = ["evaluate", "--model", model, "--csv", csv_path, "--plots", "0"]
    argv = [str(arg) for arg in argv]

    assert main([*argv, "--out", str(tmp_path / "all")]) == 0
    assert "stoi undefined on 1" in capsys.readouterr().out
    with open(tmp_path / "all" / "metrics.csv", newline="") as fin:
        metrics = list(csv.DictReader(fin))
    assert [row["ID"] for row in metrics] == ["utt0", "utt1", "utt2"]
    assert math.isnan(float(metrics[2]["stoi"]))
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert summary["count"] == 3 and summary["pesq_mode"] == "nb"
    assert summary["scored"]["stoi"] == 2
    assert [(e["ID"], e["metric"]) for e in summary["unscored"]][-1] == (
        "utt2",
        "stoi",
    )
    stoi = [float(row["stoi"]) for row in metrics[:2]]
    assert summary["means"]["stoi"] == pytest.approx(np.mean(stoi))
    assert 1.0 <= summary["means"]["pesq"] <= 4.55

    assert main([*argv, "--out", str(tmp_path / "none"), "--no-pesq"]) == 0
    summary = json.loads((tmp_path / "none" / "summary.json").read_text())
    assert "pesq" not in summary["means"] and summary["pesq_mode"] is None
    assert summary["scored"] == {"stoi": 2}
    argv += ["--no-pesq", "--no-stoi", "--overwrite"]
    assert main([*argv, "--out", str(tmp_path / "none")]) == 0
    header = (tmp_path / "none" / "metrics.csv").read_text().splitlines()[0]
    assert header == "ID,sdr,sdr_i,si-snr,si-snr_i,input_snr"
