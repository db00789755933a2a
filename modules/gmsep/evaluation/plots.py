"""Pictures of an evaluation: spectrograms of one utterance, metric histogram.

Figures are drawn on matplotlib's Agg canvas (no display, no pyplot global
state), so they work on servers and in tests.

Authors
 * gmsep contributors 2026
"""

import math

import torch
from matplotlib.figure import Figure


def log_spectrogram(signal, sample_rate, window_seconds=0.032):
    """Magnitude spectrogram in dB (Hann window, 75 % overlap).

    Arguments
    ---------
    signal : torch.Tensor
        A waveform, shape [T].
    sample_rate : int
        Its sample rate in Hz.
    window_seconds : float
        Analysis window length.

    Returns
    -------
    torch.Tensor
        Shape [F, frames], in dB relative to 1.

    Example
    -------
    >>> log_spectrogram(torch.randn(8000), 8000).shape
    torch.Size([129, 126])
    """
    n_fft = 2 ** math.ceil(math.log2(window_seconds * sample_rate))
    signal = signal.detach().float().cpu()
    if signal.numel() < n_fft:
        signal = torch.nn.functional.pad(signal, (0, n_fft - signal.numel()))
    spec = torch.stft(
        signal,
        n_fft,
        hop_length=n_fft // 4,
        window=torch.hann_window(n_fft),
        return_complex=True,
    )  # F, frames
    return 20 * torch.log10(spec.abs() + 1e-8)


def plot_spectrograms(
    path, signals, sample_rate, title=None, dynamic_range=80.0
):
    """Saves one spectrogram per signal, stacked, with a shared colour scale.

    Arguments
    ---------
    path : str or os.PathLike
        The PNG file to write.
    signals : list of (str, torch.Tensor)
        Panel titles and waveforms [T] (e.g. noisy mixture, enhanced
        mixture, estimates, references).
    sample_rate : int
        Sample rate of every signal, Hz.
    title : str, optional
        The figure's title.
    dynamic_range : float
        dB shown below the loudest bin of all panels.

    Example
    -------
    >>> path = getfixture("tmp_path") / "spec.png"
    >>> plot_spectrograms(path, [("mix", torch.randn(800))], 8000)
    >>> path.stat().st_size > 0
    True
    """
    specs = [
        (
            name,
            log_spectrogram(signal, sample_rate),
            signal.numel() / sample_rate,
        )
        for name, signal in signals
    ]
    top = max(spec.max().item() for _, spec, _ in specs)
    figure = Figure(figsize=(8, 1.8 * len(specs) + 0.6), layout="constrained")
    axes = figure.subplots(len(specs), 1, squeeze=False)[:, 0]
    for ax, (name, spec, duration) in zip(axes, specs, strict=True):
        image = ax.imshow(
            spec.numpy(),
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=top - dynamic_range,
            vmax=top,
            extent=(0, duration, 0, sample_rate / 2000),
        )
        ax.set_title(name, fontsize=9, loc="left")
        ax.set_ylabel("kHz")
    axes[-1].set_xlabel("time (s)")
    figure.colorbar(image, ax=list(axes), label="dB", shrink=0.8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=100)


def plot_histogram(path, values, metric, title=None):
    """Saves a histogram of a per-utterance metric with its mean marked.

    Arguments
    ---------
    path : str or os.PathLike
        The PNG file to write.
    values : sequence of float
        One value per utterance.
    metric : str
        The metric's name and unit, for the axis label.
    title : str, optional
        The figure's title.

    Example
    -------
    >>> path = getfixture("tmp_path") / "hist.png"
    >>> plot_histogram(path, [1.0, 2.5, 3.0], "SI-SNRi (dB)")
    >>> path.stat().st_size > 0
    True
    """
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    figure = Figure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    ax.hist(
        values, bins=max(1, min(30, len(values))), color="tab:blue", alpha=0.8
    )
    ax.axvline(mean, color="tab:red", linestyle="--", label=f"mean {mean:.2f}")
    ax.set_xlabel(metric)
    ax.set_ylabel("utterances")
    ax.legend()
    ax.set_title(
        title or f"{metric} over {len(values)} utterances", fontsize=10
    )
    figure.savefig(path, dpi=100)
