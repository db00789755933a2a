"""Checks of an experiment's configuration, run at start-up before any data
is read, so that a wrong setting fails in seconds with a message naming it.

Authors
 * gmsep contributors 2026
"""

import csv

import torch


class ConfigError(ValueError):
    """A setting of the experiment is wrong; the message names it."""


def run_option(name, hparams, run_opts, default=None):
    """A run option as the Brain resolves it: the command line's, else the
    hparams', else the default.

    Arguments
    ---------
    name : str
        The option, e.g. ``precision``.
    hparams : dict
        The loaded HyperPyYAML.
    run_opts : dict or speechbrain.utils.run_opts.RunOptions
        SpeechBrain's run options.
    default : object
        The value when neither sets it.

    Returns
    -------
    The option's value.
    """
    overridden = getattr(run_opts, "overridden_args", set(run_opts))
    if name in overridden:
        return run_opts[name]
    return hparams.get(name, default)


def check_config(hparams, run_opts=None):
    """Checks the loaded hyperparameters before any data work.

    Arguments
    ---------
    hparams : dict
        The loaded HyperPyYAML.
    run_opts : dict
        SpeechBrain's run options (``--device`` etc.).

    Raises
    ------
    ConfigError
        Naming the setting and what was expected.

    Example
    -------
    >>> check_config({"precision": "fp16", "objectives": []}, {"device": "cpu"})
    Traceback (most recent call last):
    ...
    gmsep.config_checks.ConfigError: precision: fp16 needs a CUDA device (device is cpu); use --precision bf16 (CPU mixed precision) or fp32
    """
    run_opts = run_opts or {}
    device = run_option("device", hparams, run_opts)
    if device is None:
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    precision = run_option("precision", hparams, run_opts, "fp32")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(
            f"precision: '{precision}' is not one of fp32, bf16, fp16"
        )
    if precision == "fp16" and not device.startswith("cuda"):
        raise ConfigError(
            f"precision: fp16 needs a CUDA device (device is {device}); use "
            "--precision bf16 (CPU mixed precision) or fp32"
        )

    objectives = hparams["objectives"]
    main = [o.name for o in objectives if not o.auxiliary]
    if len(main) != 1:
        raise ConfigError(
            "objectives: expected exactly one main (non-auxiliary) objective, "
            f"the separation loss; found {main or 'none'}"
        )
    separator = hparams.get("separator")
    auxiliary = [o.name for o in objectives if o.auxiliary]
    if auxiliary and separator is not None and separator.enhancer is None:
        raise ConfigError(
            f"objectives: auxiliary objective(s) {auxiliary} need an enhancer, "
            "but the separator has none (enhancer: null); remove them for a "
            "separator-only baseline"
        )
    num_spks = hparams.get("num_spks")
    if separator is not None and separator.num_spks != num_spks:
        raise ConfigError(
            f"num_spks: {num_spks}, but the separator is built for "
            f"{separator.num_spks} speakers"
        )


def check_csv_speakers(csv_path, num_spks):
    """Checks that a prepared CSV has exactly ``num_spks`` source columns.

    Arguments
    ---------
    csv_path : str
        A prepared CSV (columns s1_wav, s2_wav, ...).
    num_spks : int
        The configured number of speakers.

    Raises
    ------
    ConfigError
        When the CSV's sources do not match ``num_spks``.
    """
    with open(csv_path, newline="", encoding="utf-8") as csv_file:
        header = next(csv.reader(csv_file), [])
    found = sum(1 for column in header if column in _source_columns(len(header)))
    if found != num_spks:
        raise ConfigError(
            f"num_spks: {num_spks}, but {csv_path} has {found} source "
            f"column(s) ({', '.join(c for c in header if c.endswith('_wav'))}); "
            f"set --num_spks {found} or prepare the Libri{num_spks}Mix data"
        )


def _source_columns(max_sources):
    """The names s1_wav ... sN_wav."""
    return {f"s{i + 1}_wav" for i in range(max_sources)}
