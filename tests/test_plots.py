"""The pictures of an evaluation (gmsep.evaluation.plots): estimates drawn at
their reference's level, one colour scale, small files, whole counts."""

import numpy as np
import pytest
import torch
from gmsep.evaluation.plots import (
    colour_range,
    displayed_signals,
    log_spectrogram,
    plot_against,
    plot_histogram,
    plot_spectrogram,
    plot_spectrograms,
)
from PIL import Image

from recipes.demo_speech import make_speaker, synthesize_utterance

RATE = 8000


def speech(speaker, f0, seed, seconds=3.0):
    voice = make_speaker(speaker, f0, np.random.default_rng(seed))
    wave = synthesize_utterance(
        voice, seconds, RATE, np.random.default_rng(seed + 1)
    )
    return torch.from_numpy(0.1 * wave).float()


@pytest.fixture(scope="module")
def utterance():
    refs = torch.stack([speech(19, 120.0, 0), speech(40, 210.0, 2)], -1)
    noise = 0.02 * torch.randn(refs.shape[0], generator=torch.manual_seed(0))
    mix = refs.sum(-1) + noise
    # estimates at an arbitrary scale (-26 dB, one of them inverted) and
    # in the other order, as the SI-SNR loss leaves them
    estimates = torch.stack(
        [-0.05 * (refs[:, 1] + noise), 0.05 * (refs[:, 0] + noise)], -1
    )
    enhanced = 3.0 * (refs.sum(-1) + 0.3 * noise)
    return mix, refs, estimates, enhanced


def loudest(signal):
    return log_spectrogram(signal, RATE).max().item()


def test_estimates_are_shown_at_their_references_level(utterance):
    mix, refs, estimates, enhanced = utterance
    shown = {
        key: x
        for key, _, x in displayed_signals(mix, refs, estimates, enhanced)
    }
    assert list(shown) == ["mix", "enhanced", "est1", "est2", "ref1", "ref2"]
    for s in (1, 2):
        # the raw estimate is some 26 dB darker; the shown one within 0.5 dB
        raw = estimates[:, 2 - s]
        assert loudest(shown[f"ref{s}"]) - loudest(raw) > 20
        assert loudest(shown[f"est{s}"]) == pytest.approx(
            loudest(shown[f"ref{s}"]), abs=0.5
        )
        # matched, not only scaled: the right speaker, the right sign
        assert (
            torch.nn.functional.cosine_similarity(
                shown[f"est{s}"], refs[:, s - 1], dim=0
            )
            > 0.9
        )
    clean = refs.sum(-1)
    assert loudest(shown["enhanced"]) == pytest.approx(loudest(clean), abs=0.5)


def test_one_colour_scale_for_all_panels(utterance, tmp_path):
    mix, refs, estimates, enhanced = utterance
    shown = displayed_signals(mix, refs, estimates, enhanced)
    figure = plot_spectrograms(
        tmp_path / "all.png", [(label, x) for _, label, x in shown], RATE
    )
    images = [ax.images[0] for ax in figure.axes if ax.images]
    assert len(images) == 6
    limits = {image.get_clim() for image in images}
    assert limits == {colour_range([x for _, _, x in shown], RATE)}


def test_pictures_are_small(utterance, tmp_path):
    mix, refs, estimates, enhanced = utterance
    shown = displayed_signals(mix, refs, estimates, enhanced)
    stacked = tmp_path / "utt.png"
    plot_spectrograms(stacked, [(label, x) for _, label, x in shown], RATE)
    # 6 panels of 3 s: a palette PNG of tens of kB (true colour: ~1 MB)
    assert Image.open(stacked).mode == "P"
    assert stacked.stat().st_size < 150_000
    limits = colour_range([x for _, _, x in shown], RATE)
    for suffix in ("png", "jpg"):
        one = tmp_path / f"one.{suffix}"
        plot_spectrogram(one, mix, RATE, limits)
        assert 1_000 < one.stat().st_size < 40_000


def test_histogram_counts_are_whole_numbers(tmp_path):
    values = np.random.default_rng(0).normal(5.0, 2.0, 7)
    figure = plot_histogram(tmp_path / "hist.png", values, "SI-SNRi (dB)")
    ticks = figure.axes[0].get_yticks()
    assert len(ticks) >= 2 and np.all(ticks == np.round(ticks))
    assert (tmp_path / "hist.png").stat().st_size < 40_000


def test_metric_against_input_snr(tmp_path):
    x, y = [0.0, 2.5, 5.0], [9.0, 8.0, 6.5]
    figure = plot_against(
        tmp_path / "vs.png", x, y, "input SNR (dB)", "SI-SNRi (dB)"
    )
    offsets = figure.axes[0].collections[0].get_offsets()
    assert np.allclose(offsets, np.stack([x, y], -1))
    assert (tmp_path / "vs.png").stat().st_size < 40_000
