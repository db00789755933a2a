"""Tests of the synthetic LibriMix-layout demo corpus."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import welch

from recipes.demo_corpus import (
    NOISE_TO_SPEECH_DB,
    SPLITS,
    generate_demo_corpus,
    make_speaker,
    make_speaker_pools,
    synthesize_utterance,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(
    n_mixtures={"train-360": 4, "dev": 4, "test": 4},
    min_duration=1.0,
    max_duration=1.5,
)
UTTERANCE_ID = r"\d+-\d+-\d{4}"


@pytest.fixture(scope="module")
def full_corpus(tmp_path_factory):
    """2 and 3 speakers, 8 and 16 kHz, min and max modes."""
    out = tmp_path_factory.mktemp("full")
    summary = generate_demo_corpus(
        out,
        n_speakers=(2, 3),
        sample_rates=(8000, 16000),
        modes=("min", "max"),
        **TINY,
    )
    return out, summary


def read_pcm(path):
    """Returns (int16 samples, sample rate)."""
    samples, rate = sf.read(path, dtype="int16")
    assert samples.ndim == 1
    return samples.astype(np.int64), rate


def mixtures(folder):
    return sorted(os.listdir(os.path.join(folder, "mix_both")))


def test_layout_and_names(full_corpus):
    out, summary = full_corpus
    assert summary["skipped"] is False
    assert len(summary["corpora"]) == 8
    for n_speakers in (2, 3):
        names = {"mix_both", "mix_clean", "noise"}
        names |= {f"s{i + 1}" for i in range(n_speakers)}
        id_pattern = re.compile(
            "_".join([UTTERANCE_ID] * n_speakers) + r"\.wav"
        )
        for rate in ("wav8k", "wav16k"):
            for mode in ("min", "max"):
                corpus = out / f"Libri{n_speakers}Mix" / rate / mode
                assert sorted(os.listdir(corpus)) == sorted(SPLITS)
                for split in SPLITS:
                    assert set(os.listdir(corpus / split)) == names
                    files = mixtures(corpus / split)
                    assert len(files) == 4
                    for name in names:
                        assert (
                            sorted(os.listdir(corpus / split / name)) == files
                        )
                    for file in files:
                        assert id_pattern.fullmatch(file), file
                        speakers = [
                            part.split("-")[0] for part in file[:-4].split("_")
                        ]
                        assert len(set(speakers)) == n_speakers
    assert (out / "demo_corpus.json").is_file()


def test_train_speakers_disjoint_from_dev_and_test(full_corpus):
    out, _ = full_corpus
    corpus = out / "Libri2Mix" / "wav8k" / "min"
    speakers = {
        split: {
            part.split("-")[0]
            for file in mixtures(corpus / split)
            for part in file[:-4].split("_")
        }
        for split in SPLITS
    }
    assert not speakers["train-360"] & (speakers["dev"] | speakers["test"])
    pools, babble = make_speaker_pools(1234)
    ids = [
        s.speaker_id for split in SPLITS for s in pools[split] + babble[split]
    ]
    assert len(ids) == len(set(ids))


def read_mixture(folder, file, n_speakers, rate):
    """Returns {name: int16 samples} of one mixture, checking rate and length."""
    signals = {}
    for name in os.listdir(folder):
        signals[name], file_rate = read_pcm(folder / name / file)
        assert file_rate == rate
    assert len({len(x) for x in signals.values()}) == 1
    assert len(signals) == n_speakers + 3
    return signals


@pytest.mark.parametrize("n_speakers", [2, 3])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_mixtures_are_exact_sums_with_right_rates_and_lengths(
    full_corpus, n_speakers, rate
):
    out, _ = full_corpus
    base = out / f"Libri{n_speakers}Mix" / f"wav{rate // 1000}k"
    for file in mixtures(base / "min" / "dev"):
        for mode in ("min", "max"):
            signals = read_mixture(base / mode / "dev", file, n_speakers, rate)
            sources = [signals[f"s{i + 1}"] for i in range(n_speakers)]
            np.testing.assert_array_equal(signals["mix_clean"], sum(sources))
            np.testing.assert_array_equal(
                signals["mix_both"], signals["mix_clean"] + signals["noise"]
            )
            assert (
                np.abs(signals["mix_both"]).max()
                <= 0.9 * 32768 + n_speakers + 1
            )
            length = len(signals["mix_both"])
            assert (
                TINY["min_duration"] * rate - 1
                <= length
                <= TINY["max_duration"] * rate + 1
            )
            if mode == "min":
                min_length = length
            else:
                assert length >= min_length
                # The shortest source is zero-padded to the longest one.
                assert any(not s[min_length:].any() for s in sources)
                assert all(s[:min_length].any() for s in sources)


def test_rates_hold_the_same_mixtures(full_corpus):
    out, _ = full_corpus
    for mode in ("min", "max"):
        narrow = out / "Libri2Mix" / "wav8k" / mode / "test"
        wide = out / "Libri2Mix" / "wav16k" / mode / "test"
        assert mixtures(narrow) == mixtures(wide)
        for file in mixtures(narrow):
            length_8k = len(read_pcm(narrow / "s1" / file)[0])
            length_16k = len(read_pcm(wide / "s1" / file)[0])
            assert abs(length_16k - 2 * length_8k) <= 1


def test_min_mode_is_the_beginning_of_max_mode(full_corpus):
    out, _ = full_corpus
    base = out / "Libri3Mix" / "wav16k"
    for file in mixtures(base / "min" / "test"):
        for name in ("s1", "s2", "s3", "noise", "mix_both"):
            short, _ = read_pcm(base / "min" / "test" / name / file)
            long, _ = read_pcm(base / "max" / "test" / name / file)
            assert len(short) <= len(long)
            np.testing.assert_array_equal(short, long[: len(short)])


def test_noise_to_speech_ratio_in_documented_range(full_corpus):
    out, _ = full_corpus
    ratios = []
    for n_speakers in (2, 3):
        for rate in ("wav8k", "wav16k"):
            folder = out / f"Libri{n_speakers}Mix" / rate / "min" / "train-360"
            for file in mixtures(folder):
                noise, _ = read_pcm(folder / "noise" / file)
                speech = max(
                    np.mean(read_pcm(folder / f"s{i + 1}" / file)[0] ** 2.0)
                    for i in range(n_speakers)
                )
                ratios.append(10 * np.log10(np.mean(noise**2.0) / speech))
    low, high = NOISE_TO_SPEECH_DB
    assert low - 0.05 <= min(ratios) and max(ratios) <= high + 0.05
    # Drawn, not fixed.
    assert np.ptp(ratios) > 1.0


def spectral_flatness(x, rate):
    _, power = welch(x, rate, nperseg=256)
    power = power[1:] + 1e-20
    return np.exp(np.mean(np.log(power))) / np.mean(power)


def test_voiced_sources_are_speech_like_not_white_noise():
    rng = np.random.default_rng(0)
    rate = 16000
    for f0 in (90.0, 240.0):
        speaker = make_speaker(100, f0, rng)
        speech = synthesize_utterance(speaker, 2.0, rate, rng)
        assert speech.shape == (2 * rate,)
        assert np.isfinite(speech).all()
        white = rng.standard_normal(len(speech))
        assert spectral_flatness(speech, rate) < 0.2 * spectral_flatness(
            white, rate
        )
        frequencies, power = welch(speech, rate, nperseg=512)
        speech_band = (frequencies >= 80) & (frequencies <= 4000)
        assert power[speech_band].sum() > 0.9 * power.sum()
        # Syllables and pauses: the short-time level varies strongly.
        frame_levels = np.sqrt(np.mean(speech.reshape(-1, 320) ** 2, axis=1))
        assert np.quantile(frame_levels, 0.1) < 0.1 * np.quantile(
            frame_levels, 0.9
        )


def test_voices_differ_in_pitch():
    rng = np.random.default_rng(1)
    rate = 8000

    def pitch(speaker):
        speech = synthesize_utterance(
            speaker, 2.0, rate, np.random.default_rng(2)
        )
        frames = speech.reshape(-1, 400)
        frame = frames[np.argmax(np.mean(frames**2, axis=1))]
        correlation = np.correlate(frame, frame, "full")[len(frame) - 1 :]
        lags = np.arange(rate // 400, rate // 60)
        return rate / lags[np.argmax(correlation[lags])]

    low, high = (
        pitch(make_speaker(1, 90.0, rng)),
        pitch(make_speaker(2, 240.0, rng)),
    )
    assert 60 < low < 140 and 150 < high < 400


def file_bytes(folder):
    return {
        os.path.relpath(os.path.join(root, name), folder): open(
            os.path.join(root, name), "rb"
        ).read()
        for root, _, names in os.walk(folder)
        for name in names
        if name.endswith(".wav")
    }


def test_deterministic_for_a_seed(tmp_path):
    generate_demo_corpus(tmp_path / "a", seed=7, **TINY)
    generate_demo_corpus(tmp_path / "b", seed=7, **TINY)
    generate_demo_corpus(tmp_path / "c", seed=8, **TINY)
    first, same, other = (file_bytes(tmp_path / name) for name in "abc")
    assert len(first) == 4 * 5 * 3
    assert first == same
    # Another seed draws other talkers and utterances, hence other names.
    assert set(first) != set(other)


def test_second_call_is_a_no_op(tmp_path):
    summary = generate_demo_corpus(tmp_path, **TINY)
    before = {path: os.stat(path).st_mtime_ns for path in tmp_path.rglob("*")}
    again = generate_demo_corpus(tmp_path, **TINY)
    assert again["skipped"] is True
    assert again["n_files"] == summary["n_files"] == 60
    after = {path: os.stat(path).st_mtime_ns for path in tmp_path.rglob("*")}
    assert after == before


def test_changed_settings_regenerate_without_deleting(tmp_path):
    user_file = tmp_path / "notes.txt"
    user_file.write_text("mine")
    first = generate_demo_corpus(tmp_path, **TINY)
    assert first["skipped"] is False
    second = generate_demo_corpus(tmp_path, modes=("max",), **TINY)
    assert second["skipped"] is False
    assert user_file.read_text() == "mine"
    # The earlier min-mode corpus is kept next to the new max-mode one.
    for mode in ("min", "max"):
        assert (
            len(mixtures(tmp_path / "Libri2Mix" / "wav8k" / mode / "dev")) == 4
        )
    # A missing file makes the corpus incomplete again.
    folder = tmp_path / "Libri2Mix" / "wav8k" / "max" / "dev" / "s1"
    os.remove(folder / mixtures(folder.parent)[0])
    assert (
        generate_demo_corpus(tmp_path, modes=("max",), **TINY)["skipped"]
        is False
    )
    assert len(os.listdir(folder)) == 4


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(n_speakers=(1,)), "n_speakers"),
        (dict(sample_rates=(8500,)), "sample_rates"),
        (dict(modes=("mid",)), "modes"),
        (dict(n_mixtures={"train-100": 3}), "train-100"),
        (dict(n_mixtures={"dev": 0}), "dev"),
        (dict(min_duration=3.0, max_duration=2.0), "min_duration"),
    ],
)
def test_bad_settings_are_named(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        generate_demo_corpus(tmp_path, **settings)
    assert not os.listdir(tmp_path)


def test_command_line(tmp_path):
    command = [
        sys.executable,
        "-m",
        "recipes.demo_corpus",
        "--out",
        str(tmp_path),
    ]
    command += [
        "--n-speakers",
        "3",
        "--sample-rates",
        "16000",
        "--modes",
        "max",
    ]
    command += ["--n-train", "2", "--n-dev", "1", "--n-test", "1"]
    command += ["--min-duration", "0.5", "--max-duration", "0.8", "--seed", "3"]
    result = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert "Libri3Mix" in result.stdout and "MiB" in result.stdout
    assert (
        len(mixtures(tmp_path / "Libri3Mix" / "wav16k" / "max" / "train-360"))
        == 2
    )
    again = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert "Already complete" in again.stdout
