"""The level rules of a noisy mixture: source levels, SNR, joint peak limit.

A noisy mixture y = s1 + ... + sS + n is made the way LibriMix and WHAM! make
theirs: every source is set to a level, the noise to an SNR below the
loudest source, and when a peak of any signal would clip, all signals get one
common gain, so that y = x + n and x = s1 + ... + sS still hold for the
scaled signals. Both the dynamic mixing of training
(:mod:`gmsep.data.dynamic_mixing`) and the synthetic demo corpus
(:mod:`recipes.demo_corpus`) mix through :func:`mix_sources`.

Levels are plain RMS levels in dB (see :func:`rms_level`); all functions
keep the dtype of their input, the levels are measured in float64.

LibriMix's own rule, :func:`mix_sources_lufs`, draws loudness instead
(ITU-R BS.1770 integrated loudness in LUFS, measured with pyloudnorm as
LibriMix does) for every source and for the noise, with LibriMix's clipping
rule.

Example
-------
>>> _ = torch.manual_seed(0)
>>> sources = [torch.randn(800), torch.randn(600)]
>>> noise = torch.randn(800)
>>> sources, noise = mix_sources(sources, noise, [-25.0, -28.0], snr=5.0)
>>> sources.shape, noise.shape
(torch.Size([2, 800]), torch.Size([800]))
>>> speech_level = max(rms_level(source[:600]) for source in sources)
>>> round(speech_level - rms_level(noise[:600]), 3)
5.0

Authors
 * gmsep contributors 2026
"""

import math

import pyloudnorm
import torch

# Peak amplitude above which a mixture is scaled down, as in LibriMix
MAX_AMP = 0.9
# Floor of an RMS, so that digital silence gets a finite level
RMS_FLOOR = 1e-8
# The gating block of ITU-R BS.1770 loudness, in seconds
LOUDNESS_BLOCK = 0.4


def rms(signal, eps=RMS_FLOOR):
    """Root mean square of a signal, in float64.

    Arguments
    ---------
    signal : torch.Tensor
        A waveform, [T].
    eps : float
        Floor of the RMS.

    Returns
    -------
    float

    Example
    -------
    >>> rms(torch.full((100,), -0.5))
    0.5
    """
    return signal.double().pow(2).mean().sqrt().clamp(min=eps).item()


def rms_level(signal, eps=RMS_FLOOR):
    """Level of a signal in dB relative to full scale, from its RMS.

    LibriMix measures loudness with ITU-R BS.1770 (K-weighted, gated mean
    square). For speech and noise clips the plain RMS level differs from it by
    a roughly constant offset of a few dB, and since the target levels are
    drawn at random over a range of several dB the mixtures keep the same
    statistics without a loudness-meter dependency.

    Arguments
    ---------
    signal : torch.Tensor
        A waveform, [T].
    eps : float
        Floor of the RMS, so that digital silence gives a finite level.

    Returns
    -------
    float
        20 log10(RMS) in dB.

    Example
    -------
    >>> round(rms_level(torch.full((100,), 0.1)), 3)
    -20.0
    """
    return 20.0 * math.log10(rms(signal, eps))


def level_gain(signal, level, eps=RMS_FLOOR):
    """The gain that brings a signal to an RMS level in dB.

    Arguments
    ---------
    signal : torch.Tensor
        A waveform, [T].
    level : float
        The target level in dB.
    eps : float
        Floor of the signal's RMS.

    Returns
    -------
    float

    Example
    -------
    >>> round(level_gain(torch.full((10,), 0.01), -20.0), 4)
    10.0
    """
    return 10.0 ** (float(level) / 20.0) / rms(signal, eps)


def set_level(signal, level, eps=RMS_FLOOR):
    """Scales a signal to an RMS level in dB (see :func:`rms_level`).

    Arguments
    ---------
    signal : torch.Tensor
        A waveform, [T].
    level : float
        The target level in dB.
    eps : float
        Floor of the signal's RMS.

    Returns
    -------
    torch.Tensor
        The scaled waveform, [T].

    Example
    -------
    >>> round(rms_level(set_level(torch.randn(800), -30.0)), 3)
    -30.0
    """
    return signal * level_gain(signal, level, eps)


def peak_gain(sources, noise, max_amp=MAX_AMP):
    """The common gain that keeps every signal of a mixture below max_amp.

    The peaks of the sources, the noise, the clean mixture x and the noisy
    mixture y all count; the gain is 1 when none exceeds max_amp.

    Arguments
    ---------
    sources : torch.Tensor
        The leveled sources, [S, T].
    noise : torch.Tensor
        The leveled noise, [T].
    max_amp : float
        The largest peak allowed.

    Returns
    -------
    float

    Example
    -------
    >>> round(peak_gain(torch.full((2, 4), 0.4), torch.full((4,), 0.2)), 4)
    0.9
    """
    clean = sources.sum(0)  # T
    peak = max(
        signal.abs().max().item()
        for signal in (sources, noise, clean, clean + noise)
    )
    return min(1.0, max_amp / peak)


def mix_sources(
    sources, noise, levels, snr, overlap=None, max_amp=MAX_AMP, eps=RMS_FLOOR
):
    """Levels the sources and the noise of one mixture and limits its peak.

    Each source is set to its level (measured over the whole source), the
    noise so that the loudest leveled source is ``snr`` dB above it, both
    measured on the first ``overlap`` samples (where all sources are active),
    then one gain from :func:`peak_gain` scales everything. Sources shorter
    than the longest are zero-padded at the end; the noise is cut to that
    length. Sum the returned signals for x and y.

    Arguments
    ---------
    sources : list of torch.Tensor
        The S sources, [T_i] each.
    noise : torch.Tensor
        The noise, at least max(T_i) long.
    levels : sequence of float
        The level in dB of each source.
    snr : float
        The loudest source's power over the noise's power, in dB.
    overlap : int, optional
        Length over which the SNR is measured; the shortest source's length
        when None.
    max_amp : float
        The largest peak allowed in any signal of the mixture.
    eps : float
        Floor of every RMS.

    Returns
    -------
    sources : torch.Tensor
        The leveled sources, [S, T] with T = max(T_i).
    noise : torch.Tensor
        The leveled noise, [T].
    """
    length = max(len(source) for source in sources)
    if overlap is None:
        overlap = min(len(source) for source in sources)
    leveled = torch.zeros(
        len(sources), length, dtype=noise.dtype, device=noise.device
    )  # S, T
    for i, (source, level) in enumerate(zip(sources, levels, strict=True)):
        leveled[i, : len(source)] = source * level_gain(source, level, eps)
    speech_level = max(rms_level(source[:overlap], eps) for source in leveled)
    noise = noise[:length]
    noise = noise * level_gain(noise[:overlap], speech_level - snr, eps)
    gain = peak_gain(leveled, noise, max_amp)
    return leveled * gain, noise * gain


def integrated_loudness(signal, sample_rate):
    """ITU-R BS.1770 integrated loudness of a signal, in LUFS (pyloudnorm).

    A signal shorter than the 400 ms gating block is measured as a single
    block of its own length, so that short test clips get a level too.

    Arguments
    ---------
    signal : torch.Tensor
        A waveform, [T].
    sample_rate : int
        Its sample rate in Hz.

    Returns
    -------
    float
        The loudness; -inf for digital silence.

    Example
    -------
    >>> tone = torch.sin(torch.arange(8000) * 2 * math.pi * 1000 / 8000)
    >>> round(integrated_loudness(0.1 * tone, 8000))
    -23
    """
    block = min(LOUDNESS_BLOCK, 0.999 * len(signal) / sample_rate)
    meter = pyloudnorm.Meter(sample_rate, block_size=block)
    return float(meter.integrated_loudness(signal.double().cpu().numpy()))


def loudness_gain(signal, loudness, sample_rate):
    """The gain that brings a signal to a loudness in LUFS; 1 for silence.

    Arguments
    ---------
    signal : torch.Tensor
        A waveform, [T].
    loudness : float
        The target loudness in LUFS.
    sample_rate : int
        The sample rate in Hz.

    Returns
    -------
    float
    """
    measured = integrated_loudness(signal, sample_rate)
    if not math.isfinite(measured):
        return 1.0
    return 10.0 ** ((float(loudness) - measured) / 20.0)


def mix_sources_lufs(
    sources, noise, loudness, noise_loudness, sample_rate, max_amp=MAX_AMP
):
    """Levels the sources and the noise of one mixture as LibriMix does.

    Every source is set to its loudness and the noise to its own (LibriMix
    draws them in -33..-25 and -38..-30 LUFS: the noise level does not
    follow the speech). LibriMix's clipping rule: a signal whose peak would
    reach 1 at its loudness is instead scaled to a peak of ``max_amp``; then,
    if the noisy mixture's peak exceeds ``max_amp``, every signal gets one
    common gain that brings it to ``max_amp``, so that y = x + n and
    x = s1 + ... + sS still hold. Sources shorter than the longest are
    zero-padded at the end; the noise is cut to that length. Sum the returned
    signals for x and y.

    Arguments
    ---------
    sources : list of torch.Tensor
        The S sources, [T_i] each.
    noise : torch.Tensor
        The noise, at least max(T_i) long.
    loudness : sequence of float
        The loudness in LUFS of each source.
    noise_loudness : float
        The loudness in LUFS of the noise.
    sample_rate : int
        The sample rate in Hz (the loudness meter's filters depend on it).
    max_amp : float
        The largest peak allowed.

    Returns
    -------
    sources : torch.Tensor
        The leveled sources, [S, T] with T = max(T_i).
    noise : torch.Tensor
        The leveled noise, [T].

    Example
    -------
    >>> _ = torch.manual_seed(0)
    >>> sources, noise = [torch.randn(4000), torch.randn(4000)], torch.randn(4000)
    >>> sources, noise = mix_sources_lufs(sources, noise, [-25, -30], -35, 8000)
    >>> [round(integrated_loudness(s, 8000), 1) for s in (*sources, noise)]
    [-25.0, -30.0, -35.0]
    """
    length = max(len(source) for source in sources)
    leveled = torch.zeros(
        len(sources) + 1, length, dtype=noise.dtype, device=noise.device
    )  # S + 1, T: the sources, then the noise
    signals = [*sources, noise[:length]]
    for i, (signal, target) in enumerate(
        zip(signals, [*loudness, noise_loudness], strict=True)
    ):
        scaled = signal * loudness_gain(signal, target, sample_rate)
        if scaled.abs().max() >= 1.0:
            scaled = signal * (
                max_amp / signal.abs().max().clamp_min(RMS_FLOOR)
            )
        leveled[i, : len(signal)] = scaled
    peak = leveled.sum(0).abs().max().item()  # of y = x + n
    gain = min(1.0, max_amp / peak) if peak > 0 else 1.0
    leveled = leveled * gain
    return leveled[:-1], leveled[-1]
