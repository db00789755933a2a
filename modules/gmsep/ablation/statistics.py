"""The statistics of an ablation: means over seeds and paired differences.

A variant's difference to the reference is paired twice: the same test
utterance, separated by the two models trained with the same seed. Its 95 %
confidence interval is a two-way bootstrap: seeds and utterances are
resampled independently, with replacement, so the interval covers both the
training randomness (the seeds) and the choice of test utterances. With
few seeds it can only be as wide as the seeds disagree: read it with the
per-seed values beside it.

Authors
 * gmsep contributors 2026
"""

import math

import numpy as np

BOOTSTRAP_SAMPLES = 10000
BOOTSTRAP_SEED = 0
_BLOCK = 256  # resamples drawn at once: memory ~ _BLOCK x seeds x utterances


def mean_sd(values):
    """The mean and the sample standard deviation (0 for one value).

    Example
    -------
    >>> mean_sd([1.0, 2.0, 3.0])
    (2.0, 1.0)
    """
    values = np.asarray(values, dtype=np.float64)
    sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return float(values.mean()), sd


def paired_differences(variant, reference, metric):
    """The per-seed, per-utterance differences of a metric.

    Arguments
    ---------
    variant, reference : dict
        Seed -> {utterance ID -> {metric: value}} (``runs.read_test_results``
        of each seed's run).
    metric : str

    Returns
    -------
    numpy.ndarray
        [seeds, utterances]: variant minus reference.

    Raises
    ------
    ValueError
        When the two were not tested on the same seeds and utterances.

    Example
    -------
    >>> a = {1: {"u1": {"m": 2.0}, "u2": {"m": 3.0}}}
    >>> b = {1: {"u1": {"m": 1.0}, "u2": {"m": 1.0}}}
    >>> paired_differences(a, b, "m").tolist()
    [[1.0, 2.0]]
    """
    if sorted(variant) != sorted(reference):
        raise ValueError(
            f"paired over seeds: {sorted(variant)} vs {sorted(reference)}"
        )
    rows = []
    for seed in sorted(reference):
        ids = sorted(reference[seed])
        if sorted(variant[seed]) != ids:
            raise ValueError(
                f"seed {seed}: the two were tested on different utterances"
            )
        rows.append(
            [variant[seed][i][metric] - reference[seed][i][metric] for i in ids]
        )
    if len({len(row) for row in rows}) > 1:
        raise ValueError("the seeds were tested on different test sets")
    return np.asarray(rows, dtype=np.float64)


def paired_bootstrap(
    differences, samples=BOOTSTRAP_SAMPLES, seed=BOOTSTRAP_SEED
):
    """The mean difference and its 95 % percentile-bootstrap interval,
    resampling seeds and utterances independently.

    Arguments
    ---------
    differences : numpy.ndarray
        [seeds, utterances].
    samples : int
        Bootstrap resamples.
    seed : int
        Of the resampling: the same data give the same interval.

    Returns
    -------
    dict
        ``mean``, ``ci95`` ([low, high]), ``pairs`` (seeds x utterances).

    Example
    -------
    >>> d = np.full((2, 50), 0.5)
    >>> paired_bootstrap(d)["ci95"]
    [0.5, 0.5]
    """
    differences = np.asarray(differences, dtype=np.float64)
    n_seeds, n_utterances = differences.shape
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, samples, _BLOCK):
        count = min(_BLOCK, samples - start)
        seeds = rng.integers(0, n_seeds, (count, n_seeds))
        utterances = rng.integers(0, n_utterances, (count, n_utterances))
        resampled = differences[seeds[:, :, None], utterances[:, None, :]]
        means.append(resampled.mean(axis=(1, 2)))  # count
    low, high = np.percentile(np.concatenate(means), [2.5, 97.5])
    return {
        "mean": float(differences.mean()),
        "ci95": [_round(low), _round(high)],
        "pairs": int(differences.size),
    }


def _round(value):
    """Rounded to what bootstrap noise allows (and no -0.0)."""
    value = round(float(value), 6)
    return 0.0 if value == 0 or math.isnan(value) else value
