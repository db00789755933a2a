"""Metrics per utterance: SDR and SI-SNR and their improvements, PESQ, STOI.

SDR is BSS-eval's (512-tap distortion filter, as mir_eval's
``bss_eval_sources``) computed by ``fast_bss_eval``, which solves the same
problem an order of magnitude faster than mir_eval. Improvements are measured
against the input (noisy) mixture, as in the paper.

PESQ (ITU-T P.862, the ``pesq`` package) and STOI (``pystoi``) score each
estimate against its reference, the speakers matched by SI-SNR, averaged
over speakers. PESQ exists at 8 kHz (narrow band, P.862.1 MOS-LQO, at most
4.55) and 16 kHz (wide band, P.862.2 MOS-LQO, at most 4.64); other rates are
resampled to 16 kHz and scored wide band. Either can be undefined for an
utterance (PESQ: too short, or no speech found; STOI: fewer than 30 frames
of 25.6 ms left after its silent-frame removal, where pystoi returns 1e-5):
it is then NaN, with the reason in :class:`UndefinedMetric`.

Authors
 * gmsep contributors 2026
"""

import importlib.util
import itertools
import math
import warnings

import fast_bss_eval
import numpy as np
import scipy.signal
import torch
from speechbrain.nnet.losses import get_si_snr_with_pitwrapper

METRIC_NAMES = ("sdr", "sdr_i", "si-snr", "si-snr_i")
PERCEPTUAL_NAMES = ("pesq", "stoi")
# The package that computes each perceptual metric.
PACKAGES = {"pesq": "pesq", "stoi": "pystoi"}
# What pystoi returns, with a warning, when it cannot compute STOI.
STOI_UNDEFINED = 1e-5
PESQ_RATES = (8000, 16000)


def _sdr(references, estimates):
    """Mean BSS-eval SDR over sources under the best permutation, in dB.

    Arguments
    ---------
    references : torch.Tensor
        Clean sources, [T, S].
    estimates : torch.Tensor
        Estimated sources, [T, S].

    Returns
    -------
    float
    """
    # The numpy backend in float64: a well-conditioned filter solve, and no
    # dependence on torch's LU kernels and their threading.
    sdr = fast_bss_eval.sdr(
        references.t().double().numpy(),
        estimates.t().double().numpy(),
        load_diag=1e-10,
    )
    return float(sdr.mean())


def _si_snr(references, estimates):
    """Mean SI-SNR over sources under the best permutation, in dB.

    Arguments
    ---------
    references : torch.Tensor
        Clean sources, [T, S].
    estimates : torch.Tensor
        Estimated sources, [T, S].

    Returns
    -------
    float
    """
    # The SpeechBrain loss is the negative SI-SNR, [1] for a batch of one.
    neg_si_snr = get_si_snr_with_pitwrapper(
        references.unsqueeze(0), estimates.unsqueeze(0)
    )
    return -neg_si_snr.item()


def separation_metrics(est_sources, sources, mix):
    """SDR, SI-SNR and their improvements over the mixture for one utterance.

    Arguments
    ---------
    est_sources : torch.Tensor
        Separated signals, [T, S].
    sources : torch.Tensor
        Reference sources, [T, S].
    mix : torch.Tensor
        The input mixture, [T]: the baseline of the improvements.

    Returns
    -------
    dict
        ``sdr``, ``sdr_i``, ``si-snr``, ``si-snr_i`` in dB (python floats).

    Example
    -------
    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> sources = torch.randn(8000, 2)
    >>> mix = sources.sum(-1)
    >>> metrics = separation_metrics(sources.flip(-1), sources, mix)
    >>> metrics["si-snr"] > 60 and metrics["si-snr_i"] > 60
    True
    """
    if est_sources.shape != sources.shape or est_sources.dim() != 2:
        raise ValueError(
            f"expected estimates and references of the same shape [T, S], got "
            f"{tuple(est_sources.shape)} and {tuple(sources.shape)}"
        )
    est_sources = est_sources.detach().float().cpu()
    sources = sources.detach().float().cpu()
    mix_as_estimates = mix.detach().float().cpu().unsqueeze(-1)  # T, 1
    mix_as_estimates = mix_as_estimates.expand_as(sources)  # T, S
    sdr = _sdr(sources, est_sources)
    si_snr = _si_snr(sources, est_sources)
    return {
        "sdr": sdr,
        "sdr_i": sdr - _sdr(sources, mix_as_estimates),
        "si-snr": si_snr,
        "si-snr_i": si_snr - _si_snr(sources, mix_as_estimates),
    }


class UndefinedMetric(ValueError):
    """A metric that has no value for an utterance; the message says why."""


def missing_packages(names):
    """The packages the perceptual metrics ``names`` need that are not
    installed.

    Example
    -------
    >>> missing_packages([])
    []
    """
    return [
        PACKAGES[name]
        for name in names
        if importlib.util.find_spec(PACKAGES[name]) is None
    ]


def pesq_mode(sample_rate):
    """The PESQ mode and rate a signal at sample_rate is scored with.

    Example
    -------
    >>> pesq_mode(8000), pesq_mode(16000), pesq_mode(44100)
    (('nb', 8000), ('wb', 16000), ('wb', 16000))
    """
    if sample_rate == 8000:
        return "nb", 8000
    return "wb", 16000


def pesq_score(reference, estimate, sample_rate):
    """PESQ (MOS-LQO) of estimate against reference, 1-D numpy arrays.

    Raises
    ------
    UndefinedMetric
        When PESQ finds the signals too short or no speech in them.
    """
    from pesq import BufferTooShortError, NoUtterancesError, pesq

    mode, rate = pesq_mode(sample_rate)
    if rate != sample_rate:
        divisor = math.gcd(rate, sample_rate)
        up, down = rate // divisor, sample_rate // divisor
        reference = scipy.signal.resample_poly(reference, up, down)
        estimate = scipy.signal.resample_poly(estimate, up, down)
    try:
        return float(pesq(rate, reference, estimate, mode))
    except BufferTooShortError:
        raise UndefinedMetric("PESQ: too short") from None
    except NoUtterancesError:
        raise UndefinedMetric(
            "PESQ: no speech found in the reference"
        ) from None


def stoi_score(reference, estimate, sample_rate):
    """STOI (0 to 1) of estimate against reference, 1-D numpy arrays.

    Raises
    ------
    UndefinedMetric
        When too little is left after the silent-frame removal.
    """
    from pystoi import stoi

    with warnings.catch_warnings():
        # its warning is what the exception below says
        warnings.simplefilter("ignore", RuntimeWarning)
        score = float(stoi(reference, estimate, sample_rate))
    if score == STOI_UNDEFINED:
        raise UndefinedMetric(
            "STOI: fewer than 30 frames of speech after silence removal"
        )
    return score


SCORES = {"pesq": pesq_score, "stoi": stoi_score}


def best_permutation(references, estimates):
    """The estimate matched to each reference: the speaker order of the
    highest summed SI-SNR (all S! orders tried).

    Arguments
    ---------
    references, estimates : torch.Tensor
        [T, S].

    Returns
    -------
    list of int
        ``estimates[:, order]`` lines up with ``references``.

    Example
    -------
    >>> refs = torch.randn(800, 3)
    >>> best_permutation(refs, refs[:, [2, 0, 1]])
    [1, 2, 0]
    """
    refs = references - references.mean(0)
    ests = estimates - estimates.mean(0)
    # the projection of estimate j on reference i, and what is left: S, S
    scale = (refs.t() @ ests) / (refs.pow(2).sum(0).unsqueeze(1) + 1e-8)
    target = scale.pow(2) * refs.pow(2).sum(0).unsqueeze(1)
    residual = ests.pow(2).sum(0).unsqueeze(0) - target
    si_snr = 10 * torch.log10((target + 1e-8) / (residual.clamp(min=0) + 1e-8))
    speakers = range(references.shape[1])
    order = max(
        itertools.permutations(speakers),
        key=lambda perm: sum(si_snr[i, j].item() for i, j in enumerate(perm)),
    )
    return list(order)


def perceptual_metrics(est_sources, sources, sample_rate, names):
    """PESQ and STOI of one utterance, averaged over speakers.

    Arguments
    ---------
    est_sources : torch.Tensor
        Separated signals, [T, S].
    sources : torch.Tensor
        Reference sources, [T, S].
    sample_rate : int
        Hz.
    names : sequence of str
        Some of ``PERCEPTUAL_NAMES``.

    Returns
    -------
    values : dict
        name -> float; NaN where the metric is undefined.
    reasons : dict
        name -> why, for each undefined one.

    Example
    -------
    >>> values, reasons = perceptual_metrics(
    ...     torch.randn(400, 2), torch.randn(400, 2), 8000, ["stoi"]
    ... )
    >>> values, reasons
    ({'stoi': nan}, {'stoi': 'STOI: fewer than 30 frames of speech after silence removal'})
    """
    est_sources = est_sources.detach().double().cpu()
    sources = sources.detach().double().cpu()
    matched = est_sources[:, best_permutation(sources, est_sources)].numpy()
    references = sources.numpy()
    values, reasons = {}, {}
    for name in names:
        try:
            scores = [
                SCORES[name](references[:, s], matched[:, s], sample_rate)
                for s in range(references.shape[1])
            ]
            values[name] = float(np.mean(scores))
        except UndefinedMetric as err:
            values[name] = math.nan
            reasons[name] = str(err)
    return values, reasons
