"""Generates a small synthetic noisy-mixture corpus in the LibriMix layout.

The corpus lets the whole recipe run offline: it is written exactly as
LibriMix is (``Libri{S}Mix/wav{k}k/{min,max}/{split}/{mix_both, mix_clean,
s1 .. sS, noise}/<ID>.wav``, 16-bit PCM), so the LibriMix preparation reads it
unchanged.

Sources come from a source-filter speech synthesizer written with numpy and
scipy alone:

- voiced excitation: a Rosenberg glottal pulse train (its derivative, which
  includes the lip radiation) with a per-speaker F0 range and an intonation
  contour (declination, accents on stressed syllables, slow drift), plus
  aspiration noise gated by the glottal flow;
- vocal tract: a cascade of 2nd-order IIR formant resonators whose formant
  trajectories are interpolated between vowel targets, scaled by the
  speaker's vocal-tract length;
- syllables at 3-6 Hz with raised amplitude envelopes, unvoiced fricative and
  stop bursts (band- or high-passed noise), and pauses between words.

Every split has its own fixed pool of synthetic speakers (training speakers
are disjoint from the dev and test speakers, as in LibriSpeech) and file names
are LibriMix-like mixture IDs ``<speaker>-<chapter>-<utt>_<speaker>-...``.

Noise is a mixture of coloured noise (random spectral tilt), babble from other
synthetic talkers and non-stationary events (decaying bursts, hums). Its level
follows WHAM!: the noise-to-speech ratio, i.e. the power of the noise over the
power of the loudest source, both measured on the part where all sources are
active (the min-mode length), is drawn uniformly in [-6, +3] dB. Sources get
random levels within +-3 dB of each other. Everything of one mixture is scaled
jointly when a peak would exceed 0.9; sources and noise are then rounded to
16-bit PCM and the mixtures are summed from the rounded samples, so
mix_clean = s1 + ... + sS and mix_both = mix_clean + noise hold exactly in the
written PCM values. In min mode all signals are cropped to the shortest
source, in max mode padded with zeros to the longest one (min-mode files are
the beginnings of the max-mode files).

The generation is deterministic for a seed. Signals are synthesized once at
the highest requested sample rate and resampled to the others.

Example
-------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as out:
...     summary = generate_demo_corpus(
...         out,
...         n_mixtures={"train-360": 2, "dev": 1, "test": 1},
...         min_duration=0.5,
...         max_duration=0.8,
...     )
>>> summary["n_files"]
20
"""

import argparse
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf
import torch
from gmsep.data.mixing import mix_sources
from scipy.fft import next_fast_len
from scipy.signal import butter, resample_poly, sosfilt

logger = logging.getLogger(__name__)

SPLITS = ("train-360", "dev", "test")
DEFAULT_N_MIXTURES = {"train-360": 1500, "dev": 60, "test": 60}
MODES = ("min", "max")
MANIFEST_NAME = "demo_corpus.json"

# Speakers of each split's pool, and talkers heard only in the babble noise.
SPEAKERS_PER_SPLIT = {"train-360": 200, "dev": 20, "test": 20}
BABBLE_TALKERS_PER_SPLIT = 6
BABBLE_POOL_SIZE = 8

# Median F0 of the speakers is spread over this range (Hz), log-uniformly.
F0_MEDIAN_RANGE = (90.0, 240.0)
# Noise power over the loudest source's power, in dB (WHAM!-like).
NOISE_TO_SPEECH_DB = (-6.0, 3.0)
# Source levels: RMS in dBFS, drawn around a reference.
SOURCE_LEVEL_DBFS = -25.0
SOURCE_LEVEL_SPREAD_DB = 3.0
PEAK_LIMIT = 0.9
PCM_SCALE = 32768.0

# Adult male vowel formants F1, F2, F3, F4 in Hz (Peterson & Barney, 1952;
# F4 from typical male values); speakers scale them by their vocal tract.
VOWEL_FORMANTS = np.array(
    [
        [270.0, 2290.0, 3010.0, 3600.0],  # i
        [390.0, 1990.0, 2550.0, 3500.0],  # I
        [530.0, 1840.0, 2480.0, 3500.0],  # E
        [660.0, 1720.0, 2410.0, 3500.0],  # ae
        [730.0, 1090.0, 2440.0, 3400.0],  # a
        [570.0, 840.0, 2410.0, 3400.0],  # o
        [440.0, 1020.0, 2240.0, 3300.0],  # U
        [300.0, 870.0, 2240.0, 3300.0],  # u
        [640.0, 1190.0, 2390.0, 3400.0],  # V
        [490.0, 1350.0, 1690.0, 3300.0],  # er
    ]
)
NASAL_FORMANTS = np.array([250.0, 1100.0, 2300.0, 3300.0])
FORMANT_BANDWIDTHS = np.array([70.0, 100.0, 140.0, 220.0])
# Pass bands (Hz) of the unvoiced noise: /s/-like, /sh/-like, /f/-like.
FRICATIVE_BANDS = ((3000.0, 7000.0), (1800.0, 3800.0), (1000.0, 6000.0))
# Pitch, formants and envelopes are set every CONTROL_RATE-th of a second.
CONTROL_RATE = 100
# Seconds of resonator ringing kept after each filtered frame.
RESONANCE_TAIL = 0.06


@dataclass(frozen=True)
class SyntheticSpeaker:
    """The voice of one synthetic talker.

    Arguments
    ---------
    speaker_id : int
        LibriSpeech-like speaker number.
    chapters : tuple of int
        Chapter numbers the speaker's utterances are filed under.
    f0_median : float
        Median fundamental frequency (Hz).
    f0_range : float
        Span of the F0 contour, in octaves around the median.
    formant_scale : float
        Vocal-tract length scaling of the formants (1 = adult male).
    speaking_rate : float
        Syllables per second.
    open_quotient : float
        Open fraction of the glottal cycle.
    breathiness : float
        Level of aspiration noise relative to the glottal pulses.
    """

    speaker_id: int
    chapters: tuple
    f0_median: float
    f0_range: float
    formant_scale: float
    speaking_rate: float
    open_quotient: float
    breathiness: float

    def utterance_id(self, index):
        """Returns the LibriSpeech-like ID of the speaker's index-th utterance."""
        chapter = self.chapters[index % len(self.chapters)]
        return f"{self.speaker_id}-{chapter}-{index:04d}"


def make_speaker(speaker_id, f0_median, rng):
    """Draws the voice of a talker with the given median F0.

    The vocal-tract scaling grows with the F0 (higher voices come with shorter
    vocal tracts) with some individual spread, so two talkers differ in both
    pitch and timbre.

    Arguments
    ---------
    speaker_id : int
        Speaker number.
    f0_median : float
        Median F0 (Hz).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    SyntheticSpeaker

    Example
    -------
    >>> speaker = make_speaker(103, 120.0, np.random.default_rng(0))
    >>> speaker.utterance_id(3).startswith("103-")
    True
    """
    chapters = tuple(int(c) for c in rng.integers(1000, 300000, size=2))
    formant_scale = (f0_median / 120.0) ** 0.35 * rng.uniform(0.94, 1.06)
    return SyntheticSpeaker(
        speaker_id=int(speaker_id),
        chapters=chapters,
        f0_median=float(f0_median),
        f0_range=float(rng.uniform(0.4, 0.8)),
        formant_scale=float(np.clip(formant_scale, 0.85, 1.3)),
        speaking_rate=float(rng.uniform(3.5, 5.5)),
        open_quotient=float(rng.uniform(0.45, 0.7)),
        breathiness=float(rng.uniform(0.02, 0.15)),
    )


def make_speaker_pools(seed):
    """Draws each split's speakers and babble talkers, all distinct.

    Arguments
    ---------
    seed : int
        Corpus seed.

    Returns
    -------
    speakers : dict
        Split name -> list of SyntheticSpeaker (the separated talkers).
    babble_talkers : dict
        Split name -> list of SyntheticSpeaker heard only in the noise.

    Example
    -------
    >>> speakers, babble = make_speaker_pools(1234)
    >>> ids = [s.speaker_id for split in SPLITS for s in speakers[split]]
    >>> len(ids) == len(set(ids))
    True
    """
    rng = np.random.default_rng([seed, 0])
    sizes = [SPEAKERS_PER_SPLIT[split] for split in SPLITS]
    n_total = sum(sizes) + BABBLE_TALKERS_PER_SPLIT * len(SPLITS)
    ids = iter(rng.choice(np.arange(19, 9000), size=n_total, replace=False))
    log_low, log_high = np.log(F0_MEDIAN_RANGE)

    def pool(size):
        # Stratified medians: every pool covers the whole F0 range.
        strata = (np.arange(size) + rng.uniform(size=size)) / size
        medians = np.exp(log_low + strata * (log_high - log_low))
        return [
            make_speaker(next(ids), f0, rng) for f0 in rng.permutation(medians)
        ]

    speakers = {
        split: pool(size) for split, size in zip(SPLITS, sizes, strict=True)
    }
    babble_talkers = {split: pool(BABBLE_TALKERS_PER_SPLIT) for split in SPLITS}
    return speakers, babble_talkers


def _syllable_timeline(speaker, duration, rng):
    """Lays out words, syllables and pauses of an utterance.

    Returns voiced segments (start, end, amplitude, formant targets), unvoiced
    segments (start, end, amplitude, fricative band index) and pitch accents
    (time, height in units of the speaker's F0 range), times in seconds.
    """
    voiced, unvoiced, accents = [], [], []
    vowel_targets = VOWEL_FORMANTS * speaker.formant_scale
    nasal_target = NASAL_FORMANTS * speaker.formant_scale
    t = rng.uniform(0.05, 0.2)
    end_of_speech = duration - rng.uniform(0.05, 0.2)
    while not voiced or t < end_of_speech - 0.1:
        n_syllables = rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2])
        stressed = rng.integers(n_syllables)
        for k in range(n_syllables):
            length = rng.uniform(0.75, 1.25) / speaker.speaking_rate
            amplitude = 1.0 if k == stressed else rng.uniform(0.5, 0.8)
            onset = rng.choice(
                ["none", "fricative", "stop", "nasal"], p=[0.3, 0.3, 0.2, 0.2]
            )
            start = t
            if onset == "fricative":
                t_vowel = t + length * rng.uniform(0.25, 0.4)
                unvoiced.append((t, t_vowel, 0.3 * amplitude, rng.integers(3)))
            elif onset == "stop":
                # Closure silence, then a short broadband release burst.
                t_burst = t + length * rng.uniform(0.1, 0.2)
                t_vowel = t_burst + rng.uniform(0.01, 0.025)
                unvoiced.append((t_burst, t_vowel, 0.5 * amplitude, 2))
            elif onset == "nasal":
                t_vowel = t + length * rng.uniform(0.2, 0.3)
                voiced.append((t, t_vowel, 0.35 * amplitude, nasal_target))
            else:
                t_vowel = t
            t = start + length
            vowel = vowel_targets[rng.integers(len(vowel_targets))]
            voiced.append((t_vowel, t, amplitude, vowel))
            if k == stressed:
                accents.append(((t_vowel + t) / 2, rng.uniform(0.3, 0.6)))
            if rng.uniform() < 0.2:
                t_coda = t + length * rng.uniform(0.15, 0.3)
                unvoiced.append((t, t_coda, 0.25 * amplitude, rng.integers(3)))
                t = t_coda
        pause = (
            rng.uniform(0.3, 0.6)
            if rng.uniform() < 0.15
            else rng.uniform(0.05, 0.25)
        )
        t += pause
    return voiced, unvoiced, accents


def _trapezoids(times, segments, ramp):
    """Sum of trapezoidal envelopes (start, end, amplitude) at the given times."""
    if not segments:
        return np.zeros_like(times)
    start, end, amplitude = (
        np.array(column)[:, None] for column in zip(*segments, strict=True)
    )
    rise = (times[None, :] - start) / ramp
    fall = (end - times[None, :]) / ramp
    shape = np.clip(np.minimum(np.minimum(rise, fall), 1.0), 0.0, None)
    # Raised-cosine edges sound smoother than linear ones.
    shape = 0.5 - 0.5 * np.cos(np.pi * shape)
    return (amplitude * shape).sum(axis=0)  # T


@lru_cache(maxsize=32)
def _fricative_filter(band_index, sample_rate):
    """Butterworth band-pass, or high-pass when the band reaches Nyquist."""
    low, high = FRICATIVE_BANDS[band_index]
    if high < 0.45 * sample_rate:
        return butter(
            4, [low, high], btype="bandpass", fs=sample_rate, output="sos"
        )
    low = min(low, 0.35 * sample_rate)
    return butter(4, low, btype="highpass", fs=sample_rate, output="sos")


def _formant_cascade(excitation, formants, bandwidths, hop, sample_rate):
    """Filters through time-varying 2nd-order formant resonators in cascade.

    Each resonator is Klatt's digital resonator (poles at the formant
    frequency and bandwidth, unit gain at DC). The filter varies in time by
    overlap-add: the excitation is cut into Hann windows of ``2 * hop``
    samples (which sum to one), each window is filtered by the cascade of its
    frame, including the impulse response's tail, and the outputs are added.
    This keeps every frame independent, so all are filtered at once.

    ``formants`` and ``bandwidths`` [F, K] give frame f's resonators, centred
    on sample ``f * hop``; F = ceil(len(excitation) / hop) + 1.
    """
    n_samples = len(excitation)
    n_frames = formants.shape[0]
    # Long enough for the resonators' ringing to decay by more than 60 dB.
    blocks_per_fft = 2 + math.ceil(RESONANCE_TAIL * sample_rate / hop)
    n_fft = blocks_per_fft * hop
    padded = np.zeros((n_frames + 1) * hop)
    padded[hop : hop + n_samples] = excitation
    window = 0.5 - 0.5 * np.cos(np.pi * np.arange(2 * hop) / hop)
    frames = np.lib.stride_tricks.sliding_window_view(padded, 2 * hop)[::hop]
    spectra = np.fft.rfft(frames * window, n_fft)  # F, N

    radius = np.exp(-np.pi * bandwidths / sample_rate)  # F, K
    a1 = -2 * radius * np.cos(2 * np.pi * formants / sample_rate)
    a2 = radius**2
    # The cascade's denominator: product of the sections' polynomials in the
    # delay, so a single FFT per frame gives the whole cascade's response.
    denominator = np.ones((n_frames, 1))  # F, 1
    for k in range(formants.shape[1]):
        product = np.zeros((n_frames, denominator.shape[1] + 2))
        product[:, :-2] += denominator
        product[:, 1:-1] += denominator * a1[:, k : k + 1]
        product[:, 2:] += denominator * a2[:, k : k + 1]
        denominator = product  # F, 2k + 3
    gain = (1 + a1 + a2).prod(axis=1, keepdims=True)  # F, 1
    response = gain / np.fft.rfft(denominator, n_fft)  # F, N
    filtered = np.fft.irfft(spectra * response, n_fft)  # F, N

    # Overlap-add: frame f starts at block f of the padded signal.
    blocks = filtered.reshape(n_frames, blocks_per_fft, hop)
    output = np.zeros((n_frames + blocks_per_fft, hop))
    for offset in range(blocks_per_fft):
        output[offset : offset + n_frames] += blocks[:, offset]
    return output.reshape(-1)[hop : hop + n_samples]


def synthesize_utterance(speaker, duration, sample_rate, rng):
    """Synthesizes one speech-like utterance of a synthetic talker.

    Arguments
    ---------
    speaker : SyntheticSpeaker
        The voice.
    duration : float
        Length in seconds (including short leading and trailing silences).
    sample_rate : int
        Sample rate (Hz).
    rng : numpy.random.Generator
        Source of randomness (the words, the contours and the noise).

    Returns
    -------
    numpy.ndarray
        The waveform, float64, unit RMS, of ``round(duration * sample_rate)``
        samples.

    Example
    -------
    >>> speaker = make_speaker(19, 150.0, np.random.default_rng(0))
    >>> wave = synthesize_utterance(speaker, 1.0, 8000, np.random.default_rng(1))
    >>> wave.shape
    (8000,)
    """
    n_samples = round(duration * sample_rate)
    hop = sample_rate // CONTROL_RATE
    n_frames = math.ceil(n_samples / hop) + 1
    frame_times = np.arange(n_frames) * hop / sample_rate
    sample_times = np.arange(n_samples) / sample_rate
    voiced, unvoiced, accents = _syllable_timeline(speaker, duration, rng)

    # Intonation: declination, accents on stressed syllables, slow drift, in
    # octaves around the median, kept inside the speaker's F0 range.
    contour = 0.3 - 0.6 * frame_times / duration
    for time_, height in accents:
        contour += height * np.exp(-0.5 * ((frame_times - time_) / 0.08) ** 2)
    drift_rates = rng.uniform(0.5, 2.0, size=3)
    drift_phases = rng.uniform(0, 2 * np.pi, size=3)
    contour += 0.1 * np.sin(
        2 * np.pi * drift_rates * frame_times[:, None] + drift_phases
    ).sum(axis=1)
    contour = np.clip(contour, -0.5, 0.5) * speaker.f0_range
    f0 = speaker.f0_median * 2.0 ** np.interp(
        sample_times, frame_times, contour
    )

    # Rosenberg glottal flow over the phase of each pitch period; its
    # derivative models the excitation including lip radiation.
    phase = np.cumsum(f0 / sample_rate) % 1.0
    opening = 0.6 * speaker.open_quotient
    closing = 0.4 * speaker.open_quotient
    flow = np.where(
        phase < opening,
        0.5 * (1 - np.cos(np.pi * phase / opening)),
        np.where(
            phase < opening + closing,
            np.cos(0.5 * np.pi * (phase - opening) / closing),
            0.0,
        ),
    )
    excitation = (
        np.diff(flow, prepend=0.0) * sample_rate / (speaker.f0_median * 4)
    )
    excitation += speaker.breathiness * flow * rng.standard_normal(n_samples)
    excitation *= np.interp(
        sample_times,
        frame_times,
        _trapezoids(frame_times, [s[:3] for s in voiced], 0.02),
    )

    # Formant trajectories: targets at segment centres, linear transitions.
    centres = np.array([(start + end) / 2 for start, end, _, _ in voiced])
    targets = np.array([target for _, _, _, target in voiced])
    formants = np.stack(
        [
            np.interp(frame_times, centres, targets[:, k])
            for k in range(targets.shape[1])
        ],
        axis=1,
    )  # F, K
    # Resonances too close to Nyquist are left out (e.g. F4 at 8 kHz).
    kept = np.median(formants, axis=0) < 0.42 * sample_rate
    formants = np.minimum(formants[:, kept], 0.45 * sample_rate)
    bandwidths = np.broadcast_to(
        FORMANT_BANDWIDTHS[kept] * speaker.formant_scale, formants.shape
    )
    speech = _formant_cascade(
        excitation, formants, bandwidths, hop, sample_rate
    )
    speech /= np.sqrt(np.mean(speech**2)) + 1e-12

    noise = rng.standard_normal(n_samples)
    fine_times = np.arange(0.0, duration + 0.001, 0.001)
    for band_index in range(len(FRICATIVE_BANDS)):
        segments = [s[:3] for s in unvoiced if s[3] == band_index]
        if segments:
            # Envelopes on a 1 ms grid resolve the 8 ms ramps.
            envelope = np.interp(
                sample_times,
                fine_times,
                _trapezoids(fine_times, segments, 0.008),
            )
            speech += envelope * sosfilt(
                _fricative_filter(band_index, sample_rate), noise
            )
    return speech / (np.sqrt(np.mean(speech**2)) + 1e-12)


def synthesize_noise(n_samples, sample_rate, babble_pool, rng):
    """Synthesizes a noise background: coloured noise, babble and events.

    Arguments
    ---------
    n_samples : int
        Length of the noise.
    sample_rate : int
        Sample rate (Hz).
    babble_pool : list of numpy.ndarray
        Utterances of talkers that are not separated, summed into babble.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        The noise, float64, unit RMS.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> pool = [rng.standard_normal(4000) for _ in range(4)]
    >>> synthesize_noise(8000, 8000, pool, rng).shape
    (8000,)
    """
    times = np.arange(n_samples) / sample_rate

    def unit(x):
        return x / (np.sqrt(np.mean(x**2)) + 1e-12)

    # Coloured noise: power falls as f^-tilt (near pink to brown), slowly
    # modulated.
    n_fft = next_fast_len(n_samples)
    spectrum = np.fft.rfft(rng.standard_normal(n_fft))
    frequencies = np.maximum(np.fft.rfftfreq(n_fft, 1 / sample_rate), 50.0)
    spectrum *= frequencies ** (-rng.uniform(0.8, 2.0) / 2)
    coloured = unit(np.fft.irfft(spectrum, n_fft)[:n_samples])
    coloured *= 1 + rng.uniform(0, 0.5) * np.sin(
        2 * np.pi * rng.uniform(0.1, 0.5) * times
    )

    # Babble: several other talkers, each at a random offset and level.
    picks = rng.choice(
        len(babble_pool),
        size=min(len(babble_pool), rng.integers(3, 7)),
        replace=False,
    )
    babble = sum(
        10 ** (rng.uniform(-6, 0) / 20)
        * np.resize(
            np.roll(babble_pool[i], rng.integers(len(babble_pool[i]))),
            n_samples,
        )
        for i in picks
    )
    noise = rng.uniform(0.3, 1.0) * unit(coloured) + rng.uniform(
        0.3, 1.0
    ) * unit(babble)

    # Hum: a mains-like tone with harmonics that fades in and out.
    if rng.uniform() < 0.5:
        fundamental = rng.choice([50.0, 60.0]) * rng.uniform(0.98, 1.02)
        harmonics = np.arange(1, 7)
        harmonics = harmonics[harmonics * fundamental < 0.45 * sample_rate]
        hum = (
            np.sin(
                2 * np.pi * fundamental * harmonics[:, None] * times
                + rng.uniform(0, 2 * np.pi, (len(harmonics), 1))
            )
            / harmonics[:, None] ** 1.5
        ).sum(axis=0)
        on, off = np.sort(rng.uniform(0, times[-1], size=2))
        hum *= _trapezoids(times, [(on, off + 0.5, 1.0)], 0.2)
        noise += rng.uniform(0.1, 0.4) * unit(hum + 1e-12)

    # Bursts: impacts that decay within tens of milliseconds.
    n_bursts = rng.poisson(rng.uniform(0.3, 1.5) * times[-1])
    if n_bursts:
        onsets = rng.uniform(0, times[-1], size=(n_bursts, 1))
        decays = rng.uniform(0.01, 0.1, size=(n_bursts, 1))
        heights = rng.uniform(0.5, 1.5, size=(n_bursts, 1))
        lag = times - onsets
        envelope = (
            heights * np.exp(-np.maximum(lag, 0) / decays) * (lag >= 0)
        ).sum(axis=0)
        noise += 3 * envelope * rng.standard_normal(n_samples)
    return unit(noise)


def _mix(sources, noise, levels_db, noise_to_speech_db):
    """Levels, mixes and quantises one mixture at one sample rate.

    The levels follow :func:`gmsep.data.mixing.mix_sources`, the SNR measured
    where all sources are active (the min-mode length). Returns the max-mode
    signals as int16 arrays (sources, noise, mix_clean, mix_both) and the
    min-mode length.
    """
    n_min = min(len(s) for s in sources)
    padded, noise = mix_sources(
        [torch.from_numpy(source) for source in sources],
        torch.from_numpy(noise),
        levels_db,
        snr=-noise_to_speech_db,
        overlap=n_min,
        max_amp=PEAK_LIMIT,
        eps=1e-12,
    )  # S, T and T
    # Mixtures are summed from rounded sources: the sums hold exactly in PCM.
    sources_pcm = np.round(padded.numpy() * PCM_SCALE).astype(np.int32)
    noise_pcm = np.round(noise.numpy() * PCM_SCALE).astype(np.int32)
    mix_clean_pcm = sources_pcm.sum(axis=0)
    signals = {f"s{i + 1}": s for i, s in enumerate(sources_pcm)}
    signals["noise"] = noise_pcm
    signals["mix_clean"] = mix_clean_pcm
    signals["mix_both"] = mix_clean_pcm + noise_pcm
    return {name: x.astype(np.int16) for name, x in signals.items()}, n_min


def _plan_split(
    speakers, n_speakers, split, n_mixtures, min_duration, max_duration, seed
):
    """Chooses the talkers and utterance durations of a split's mixtures.

    Returns a list of (mixture ID, speakers, durations, mixture seed); every
    utterance is used once.
    """
    split_index = SPLITS.index(split)
    rng = np.random.default_rng([seed, n_speakers, split_index])
    next_utterance = {speaker.speaker_id: 0 for speaker in speakers}
    plan = []
    for index in range(n_mixtures):
        chosen = [
            speakers[i]
            for i in rng.choice(len(speakers), size=n_speakers, replace=False)
        ]
        ids = []
        for speaker in chosen:
            ids.append(speaker.utterance_id(next_utterance[speaker.speaker_id]))
            next_utterance[speaker.speaker_id] += 1
        durations = rng.uniform(min_duration, max_duration, size=n_speakers)
        plan.append(
            (
                "_".join(ids),
                chosen,
                durations,
                (seed, n_speakers, split_index, index, 1),
            )
        )
    return plan


def _write_mixture(out_folder, split, mixture, babble_pool, parameters):
    """Synthesizes one planned mixture and writes it at every rate and mode."""
    mixture_id, speakers, durations, mixture_seed = mixture
    rng = np.random.default_rng(mixture_seed)
    highest_rate = parameters["sample_rates"][-1]
    sources = [
        synthesize_utterance(speaker, duration, highest_rate, rng)
        for speaker, duration in zip(speakers, durations, strict=True)
    ]
    noise = synthesize_noise(
        max(len(s) for s in sources), highest_rate, babble_pool, rng
    )
    spread = SOURCE_LEVEL_SPREAD_DB / 2
    levels_db = SOURCE_LEVEL_DBFS + rng.uniform(-spread, spread, len(speakers))
    noise_to_speech_db = rng.uniform(*NOISE_TO_SPEECH_DB)
    for rate in parameters["sample_rates"]:
        factor = math.gcd(rate, highest_rate)
        resampled = [
            resample_poly(x, rate // factor, highest_rate // factor)
            for x in sources + [noise]
        ]
        # Levels are set per rate: resampling removes some high bands.
        signals, n_min = _mix(
            resampled[:-1], resampled[-1], levels_db, noise_to_speech_db
        )
        for mode in parameters["modes"]:
            length = n_min if mode == "min" else len(signals["mix_clean"])
            corpus = _corpus_folder(out_folder, len(speakers), rate, mode)
            for name, signal in signals.items():
                folder = os.path.join(corpus, split, name)
                os.makedirs(folder, exist_ok=True)
                sf.write(
                    os.path.join(folder, f"{mixture_id}.wav"),
                    signal[:length],
                    rate,
                    subtype="PCM_16",
                )


def _corpus_folder(out_folder, n_speakers, sample_rate, mode):
    return os.path.join(
        out_folder, f"Libri{n_speakers}Mix", f"wav{sample_rate // 1000}k", mode
    )


def _signal_names(n_speakers):
    return (
        ["mix_both", "mix_clean"]
        + [f"s{i + 1}" for i in range(n_speakers)]
        + ["noise"]
    )


def _check_parameters(
    n_speakers,
    sample_rates,
    modes,
    n_mixtures,
    min_duration,
    max_duration,
    seed,
):
    """Validates the settings; returns them normalised (sorted, complete)."""
    n_speakers = sorted({int(n) for n in n_speakers})
    smallest_pool = min(SPEAKERS_PER_SPLIT.values())
    if not n_speakers or any(n < 2 or n > smallest_pool for n in n_speakers):
        raise ValueError(
            f"n_speakers: expected numbers of speakers per mixture between 2 and {smallest_pool}, got {n_speakers}"
        )
    sample_rates = sorted({int(rate) for rate in sample_rates})
    if not sample_rates or any(
        rate % 1000 or not 8000 <= rate <= 48000 for rate in sample_rates
    ):
        raise ValueError(
            f"sample_rates: expected multiples of 1000 Hz between 8000 and 48000 (folders are named wav<k>k), got {sample_rates}"
        )
    modes = sorted(set(modes))
    if not modes or not set(modes) <= set(MODES):
        raise ValueError(
            f"modes: expected a non-empty subset of {list(MODES)}, got {modes}"
        )
    counts = dict(DEFAULT_N_MIXTURES)
    for split, count in (n_mixtures or {}).items():
        if split not in SPLITS:
            raise ValueError(
                f"n_mixtures: unknown split '{split}', expected one of {list(SPLITS)}"
            )
        if int(count) != count or count < 1:
            raise ValueError(
                f"n_mixtures['{split}']: expected a positive integer, got {count}"
            )
        counts[split] = int(count)
    if not 0 < min_duration <= max_duration:
        raise ValueError(
            f"min_duration/max_duration: expected 0 < min_duration <= max_duration (seconds), got {min_duration} and {max_duration}"
        )
    return {
        "n_speakers": n_speakers,
        "sample_rates": sample_rates,
        "modes": modes,
        "n_mixtures": counts,
        "min_duration": float(min_duration),
        "max_duration": float(max_duration),
        "seed": int(seed),
    }


def _folder_size(folder):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(folder)
        for name in names
    )


def generate_demo_corpus(
    out_folder,
    n_speakers=(2,),
    sample_rates=(8000,),
    modes=("min",),
    n_mixtures=None,
    min_duration=2.0,
    max_duration=4.0,
    seed=1234,
):
    """Writes a synthetic noisy-mixture corpus in the LibriMix layout.

    Skips the work when ``out_folder`` already holds a complete corpus made
    with the same settings (recorded in ``demo_corpus.json``, written last).
    Otherwise writes every file of the requested corpus, overwriting only
    files of this layout; nothing is ever deleted.

    Arguments
    ---------
    out_folder : str
        Root folder; gets ``Libri{S}Mix/wav{k}k/{mode}/{split}/...``.
    n_speakers : sequence of int
        Speakers per mixture, one corpus each (2 -> Libri2Mix, 3 -> Libri3Mix).
    sample_rates : sequence of int
        Sample rates in Hz (multiples of 1000).
    modes : sequence of str
        "min" (cropped to the shortest source) and/or "max" (zero-padded to
        the longest).
    n_mixtures : dict, optional
        Split name -> number of mixtures, overriding DEFAULT_N_MIXTURES
        (train-360: 1500, dev: 60, test: 60).
    min_duration, max_duration : float
        Range of the source utterance durations in seconds.
    seed : int
        Seed; the same seed gives byte-identical files.

    Returns
    -------
    dict
        ``out_folder``, ``corpora`` (the written ``.../wav{k}k/{mode}``
        folders), ``n_mixtures`` (per split), ``n_files``, ``bytes`` (size of
        the corpus folders on disk), ``seconds`` (time taken) and ``skipped``
        (True when the corpus was already complete).

    Example
    -------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as out:
    ...     counts = {"train-360": 1, "dev": 1, "test": 1}
    ...     kwargs = dict(n_mixtures=counts, min_duration=0.4, max_duration=0.5)
    ...     first = generate_demo_corpus(out, **kwargs)
    ...     second = generate_demo_corpus(out, **kwargs)
    >>> first["skipped"], second["skipped"]
    (False, True)
    """
    start_time = time.perf_counter()
    parameters = _check_parameters(
        n_speakers,
        sample_rates,
        modes,
        n_mixtures,
        min_duration,
        max_duration,
        seed,
    )
    speakers, babble_talkers = make_speaker_pools(parameters["seed"])
    plans = {
        (n_spk, split): _plan_split(
            speakers[split],
            n_spk,
            split,
            count,
            parameters["min_duration"],
            parameters["max_duration"],
            parameters["seed"],
        )
        for n_spk in parameters["n_speakers"]
        for split, count in parameters["n_mixtures"].items()
    }
    targets = []  # (folder, mixture IDs) of every signal folder to write
    for (n_spk, split), plan in plans.items():
        for rate in parameters["sample_rates"]:
            for mode in parameters["modes"]:
                for name in _signal_names(n_spk):
                    folder = os.path.join(
                        _corpus_folder(out_folder, n_spk, rate, mode),
                        split,
                        name,
                    )
                    targets.append(
                        (folder, [mixture_id for mixture_id, *_ in plan])
                    )
    corpora = sorted(
        {
            _corpus_folder(out_folder, n_spk, rate, mode)
            for n_spk in parameters["n_speakers"]
            for rate in parameters["sample_rates"]
            for mode in parameters["modes"]
        }
    )
    n_files = sum(len(ids) for _, ids in targets)
    summary = {
        "out_folder": os.path.abspath(out_folder),
        "corpora": [os.path.abspath(c) for c in corpora],
        "n_mixtures": parameters["n_mixtures"],
        "n_files": n_files,
    }

    manifest_path = os.path.join(out_folder, MANIFEST_NAME)
    previous = None
    if os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            previous = json.load(f)
    complete = all(
        os.path.isfile(os.path.join(folder, f"{mixture_id}.wav"))
        for folder, ids in targets
        for mixture_id in ids
    )
    if (
        previous is not None
        and previous.get("parameters") == parameters
        and complete
    ):
        logger.info(
            "Demo corpus in %s is complete, skipping generation.", out_folder
        )
        summary.update(
            bytes=sum(_folder_size(c) for c in corpora),
            seconds=time.perf_counter() - start_time,
            skipped=True,
        )
        return summary
    if previous is not None:
        logger.info(
            "Demo corpus in %s was made with other settings or is incomplete: "
            "regenerating; files outside the requested corpus are kept.",
            out_folder,
        )
    elif os.path.isdir(out_folder) and os.listdir(out_folder):
        logger.info(
            "%s is not empty and holds no demo corpus: writing into it, "
            "overwriting only files of the corpus layout.",
            out_folder,
        )
    for folder, ids in targets:
        if os.path.isdir(folder):
            strays = set(os.listdir(folder)) - {
                f"{mixture_id}.wav" for mixture_id in ids
            }
            if strays:
                logger.warning(
                    "%s holds %d files this corpus does not contain; they are kept, "
                    "and a LibriMix preparation will read them too.",
                    folder,
                    len(strays),
                )

    highest_rate = parameters["sample_rates"][-1]
    for split in parameters["n_mixtures"]:
        babble_rng = np.random.default_rng(
            [parameters["seed"], 0, SPLITS.index(split)]
        )
        babble_pool = [
            synthesize_utterance(
                babble_talkers[split][i % BABBLE_TALKERS_PER_SPLIT],
                parameters["max_duration"],
                highest_rate,
                babble_rng,
            )
            for i in range(BABBLE_POOL_SIZE)
        ]
        for n_spk in parameters["n_speakers"]:
            for mixture in plans[(n_spk, split)]:
                _write_mixture(
                    out_folder, split, mixture, babble_pool, parameters
                )

    seconds = time.perf_counter() - start_time
    manifest = {
        "generator": "recipes.demo_corpus",
        "parameters": parameters,
        "corpora": [os.path.relpath(c, out_folder) for c in corpora],
        "n_files": n_files,
        "seconds": round(seconds, 2),
    }
    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=2)
    summary.update(
        bytes=sum(_folder_size(c) for c in corpora),
        seconds=seconds,
        skipped=False,
    )
    return summary


def main(argv=None):
    """Command line: ``python -m recipes.demo_corpus --out DIR [options]``."""
    parser = argparse.ArgumentParser(
        description="Generate a synthetic noisy speech-mixture corpus in the "
        "LibriMix layout."
    )
    parser.add_argument("--out", required=True, help="output root folder")
    parser.add_argument(
        "--n-speakers",
        type=int,
        nargs="+",
        default=[2],
        help="speakers per mixture (2 -> Libri2Mix, 3 -> Libri3Mix)",
    )
    parser.add_argument(
        "--sample-rates",
        type=int,
        nargs="+",
        default=[8000],
        help="sample rates in Hz",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["min"],
        choices=MODES,
        help="min: crop to shortest source; max: pad to longest",
    )
    for split, flag in zip(
        SPLITS, ("--n-train", "--n-dev", "--n-test"), strict=True
    ):
        parser.add_argument(
            flag,
            type=int,
            default=DEFAULT_N_MIXTURES[split],
            help=f"mixtures in {split} (default {DEFAULT_N_MIXTURES[split]})",
        )
    parser.add_argument(
        "--min-duration", type=float, default=2.0, help="shortest utterance (s)"
    )
    parser.add_argument(
        "--max-duration", type=float, default=4.0, help="longest utterance (s)"
    )
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = generate_demo_corpus(
        args.out,
        n_speakers=args.n_speakers,
        sample_rates=args.sample_rates,
        modes=args.modes,
        n_mixtures={
            "train-360": args.n_train,
            "dev": args.n_dev,
            "test": args.n_test,
        },
        min_duration=args.min_duration,
        max_duration=args.max_duration,
        seed=args.seed,
    )
    verb = "Already complete" if summary["skipped"] else "Wrote"
    counts = ", ".join(
        f"{split}: {n}" for split, n in summary["n_mixtures"].items()
    )
    for corpus in summary["corpora"]:
        print(f"{verb}: {corpus} ({counts} mixtures)")
    print(
        f"{summary['n_files']} files, {summary['bytes'] / 2**20:.1f} MiB on disk, {summary['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
