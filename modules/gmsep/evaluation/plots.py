"""Pictures of an evaluation: spectrograms of one utterance, metric histogram,
a metric against the input SNR.

Figures are drawn on matplotlib's Agg canvas (no display, no pyplot global
state), so they work on servers and in tests. They are saved small: PNGs
with a palette of 128 colours (a spectrogram's texture does not compress as
true colour), JPEGs at quality 80, at a modest resolution.

Authors
 * gmsep contributors 2026
"""

import io
import math

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from gmsep.evaluation.metrics import best_permutation

DPI = 72
PALETTE_COLOURS = 128
JPEG_QUALITY = 80


def save_small(figure, path, dpi=DPI):
    """Saves a figure as a small PNG (128-colour palette) or JPEG, by the
    path's suffix.

    Example
    -------
    >>> figure = Figure(figsize=(2, 1))
    >>> _ = figure.subplots().plot([0, 1])
    >>> path = getfixture("tmp_path") / "line.png"
    >>> save_small(figure, path)
    >>> Image.open(path).mode
    'P'
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    image = Image.open(buffer).convert("RGB")
    suffix = str(path).lower().rsplit(".", 1)[-1]
    if suffix in ("jpg", "jpeg"):
        image.save(path, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        image = image.quantize(PALETTE_COLOURS)
        image.save(path, format="PNG", optimize=True)


def scaled_to(signal, reference):
    """signal scaled to best match reference (least squares): what an
    SI-SNR sees of it, at the reference's level.

    A separated estimate's scale is arbitrary (the SI-SNR loss ignores it),
    so next to its reference it is drawn at the reference's level.

    Example
    -------
    >>> ref = torch.randn(100)
    >>> torch.allclose(scaled_to(0.01 * ref, ref), ref, atol=1e-5)
    True
    """
    signal = signal.detach().double().cpu()
    reference = reference.detach().double().cpu()
    energy = signal.pow(2).sum()
    if energy == 0:
        return signal.float()
    return (signal * (signal @ reference) / energy).float()


def displayed_signals(mix, references, estimates, enhanced=None):
    """What the pictures (and the report's players) of an utterance show, in
    order: the noisy mixture, the enhanced mixture, the estimates matched to
    the references and scaled to their level (:func:`scaled_to`), the
    references.

    Arguments
    ---------
    mix : torch.Tensor
        [T].
    references, estimates : torch.Tensor
        [T, S].
    enhanced : torch.Tensor, optional
        The EnhanceNet's mixture [T]: scaled to the sum of the references.

    Returns
    -------
    list of (str, str, torch.Tensor)
        A short key (``mix``, ``enhanced``, ``est1``, ``ref1`` ...), a
        label and the signal [T].

    Example
    -------
    >>> refs = torch.randn(800, 2)
    >>> shown = displayed_signals(refs.sum(-1), refs, 0.1 * refs.flip(-1))
    >>> [key for key, _, _ in shown]
    ['mix', 'est1', 'est2', 'ref1', 'ref2']
    >>> torch.allclose(shown[1][2], refs[:, 0], atol=1e-5)
    True
    """
    shown = [("mix", "noisy mixture", mix)]
    if enhanced is not None:
        shown.append(
            (
                "enhanced",
                "enhanced mixture (level of the clean mixture)",
                scaled_to(enhanced, references.sum(-1)),
            )
        )
    matched = estimates[:, best_permutation(references, estimates)]
    speakers = range(references.shape[-1])
    shown += [
        (
            f"est{s + 1}",
            f"estimate s{s + 1} (level of reference s{s + 1})",
            scaled_to(matched[:, s], references[:, s]),
        )
        for s in speakers
    ]
    shown += [
        (f"ref{s + 1}", f"reference s{s + 1}", references[:, s])
        for s in speakers
    ]
    return shown


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
    >>> _ = plot_spectrograms(path, [("mix", torch.randn(800))], 8000)
    >>> path.stat().st_size > 0
    True
    """
    limits = colour_range([x for _, x in signals], sample_rate, dynamic_range)
    figure = Figure(figsize=(7, 1.3 * len(signals) + 0.6), layout="constrained")
    axes = figure.subplots(len(signals), 1, squeeze=False)[:, 0]
    for ax, (name, signal) in zip(axes, signals, strict=True):
        image = draw_spectrogram(ax, signal, sample_rate, limits)
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1].set_xlabel("time (s)")
    figure.colorbar(image, ax=list(axes), label="dB", shrink=0.8)
    if title:
        figure.suptitle(title, fontsize=10)
    save_small(figure, path)
    return figure


def colour_range(signals, sample_rate, dynamic_range=80.0):
    """The shared colour scale of spectrograms: (top - range, top) in dB,
    top the loudest bin of all signals.

    Example
    -------
    >>> low, top = colour_range([torch.ones(800)], 8000)
    >>> top - low
    80.0
    """
    top = max(
        log_spectrogram(signal, sample_rate).max().item() for signal in signals
    )
    return top - dynamic_range, top


def draw_spectrogram(ax, signal, sample_rate, limits):
    """Draws one spectrogram on ax with the colour limits (low, top) in dB;
    returns the image."""
    spec = log_spectrogram(signal, sample_rate)
    duration = signal.numel() / sample_rate
    image = ax.imshow(
        spec.numpy(),
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=limits[0],
        vmax=limits[1],
        extent=(0, duration, 0, sample_rate / 2000),
    )
    ax.set_ylabel("kHz")
    return image


def plot_spectrogram(path, signal, sample_rate, limits, size=(4.2, 1.2)):
    """Saves one small spectrogram (for a page of audio players).

    Arguments
    ---------
    path : str or os.PathLike
        The picture (.png or .jpg).
    signal : torch.Tensor
        [T].
    sample_rate : int
        Hz.
    limits : tuple of float
        Colour limits (low, top) in dB, shared by the pictures it is
        compared with (:func:`colour_range`).
    size : tuple of float
        Inches.

    Example
    -------
    >>> path = getfixture("tmp_path") / "one.jpg"
    >>> _ = plot_spectrogram(path, torch.randn(8000), 8000, (-40.0, 40.0))
    >>> Image.open(path).size
    (302, 86)
    """
    figure = Figure(figsize=size, layout="constrained")
    ax = figure.subplots()
    draw_spectrogram(ax, signal, sample_rate, limits)
    ax.tick_params(labelsize=7)
    ax.set_ylabel("kHz", fontsize=7)
    save_small(figure, path)
    return figure


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

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> path = getfixture("tmp_path") / "hist.png"
    >>> _ = plot_histogram(path, [1.0, 2.5, 3.0], "SI-SNRi (dB)")
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
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    ax.set_title(
        title or f"{metric} over {len(values)} utterances", fontsize=10
    )
    save_small(figure, path)
    return figure


def plot_against(path, x, y, x_label, y_label, title=None):
    """Saves a scatter plot of a per-utterance metric against another
    quantity (e.g. SI-SNRi against the input SNR).

    Example
    -------
    >>> path = getfixture("tmp_path") / "scatter.png"
    >>> _ = plot_against(path, [0.0, 5.0], [8.0, 6.0], "input SNR (dB)", "SI-SNRi (dB)")
    >>> path.stat().st_size > 0
    True
    """
    figure = Figure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    ax.scatter(x, y, s=12, color="tab:blue", alpha=0.7)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"{y_label} against {x_label}", fontsize=10)
    save_small(figure, path)
    return figure
