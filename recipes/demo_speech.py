"""A source-filter speech synthesizer for the synthetic demo corpus.

The demo corpus (:mod:`recipes.demo_corpus`) needs many talkers whose
voices differ in pitch and timbre, without any recorded speech: the recipe
must run offline. This module makes them with numpy and scipy alone:

- voiced excitation: a Rosenberg glottal pulse train (its derivative, which
  includes the lip radiation) with a per-speaker F0 range and an intonation
  contour (declination, accents on stressed syllables, slow drift), plus
  aspiration noise gated by the glottal flow;
- vocal tract: a cascade of 2nd-order IIR formant resonators whose formant
  trajectories are interpolated between vowel targets, scaled by the
  speaker's vocal-tract length;
- syllables at 3-6 Hz with raised amplitude envelopes, unvoiced fricative and
  stop bursts (band- or high-passed noise), and pauses between words.

The noise backgrounds (coloured noise, babble of other synthetic talkers,
hums and bursts) come from :func:`synthesize_noise`. Everything is a
deterministic function of the numpy Generator it is given.

Example
-------
>>> speaker = make_speaker(19, 150.0, np.random.default_rng(0))
>>> synthesize_utterance(speaker, 0.5, 8000, np.random.default_rng(1)).shape
(4000,)

Authors
 * gmsep contributors 2026
"""

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import butter, sosfilt

# Median F0 of the speakers is spread over this range (Hz), log-uniformly.
F0_MEDIAN_RANGE = (90.0, 240.0)

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
