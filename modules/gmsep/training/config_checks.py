"""Checks of an experiment's configuration, run at start-up before any data
is read, so that a wrong setting fails in seconds with a message naming it.

Authors
 * gmsep contributors 2026
"""

import csv
import math
import os
import re

import ruamel.yaml
import torch
from hyperpyyaml import resolve_references

from gmsep.data.columns import count_source_columns
from gmsep.evaluation.metrics import PERCEPTUAL_NAMES, missing_packages
from gmsep.gradient_modulation import GradientModulation
from gmsep.losses import EnhancedFeatureMSE

# Settings with a fixed set of values, checked before the objects built from
# them raise an error that does not name the setting.
CHOICES = {
    "gm_mode": GradientModulation.MODES,
    "se_reduction": EnhancedFeatureMSE.REDUCTIONS,
    "se_weight_decay": ("constant", "linear"),
    "gm_params": ("encoder_enhancer", "enhancer"),
}
# Numeric settings that only make sense above zero (or at zero or above).
POSITIVE = ("lr", "N_epochs", "batch_size", "sample_rate", "num_spks")
NON_NEGATIVE = ("num_workers", "se_weight", "max_grad_norm")
# Settings whose default is written as an integer but that take any number.
FRACTIONAL = (
    "threshold",
    "max_grad_norm",
    "loss_upper_lim",
    "ckpt_interval_minutes",
)


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


def check_hparams_file(hparams_file, overrides=""):
    """Checks the settings that loading the hparams would fail on without
    naming them: required settings (``!PLACEHOLDER``) not given, and values
    outside ``CHOICES``. Nothing is built.

    Arguments
    ---------
    hparams_file : str
        The HyperPyYAML file.
    overrides : str
        The command-line overrides, as YAML (``sb.parse_arguments`` gives them).

    Returns
    -------
    dict
        Every setting of the file and its sections, references resolved
        (as text: nothing is built), the experiment's own first.

    Raises
    ------
    ConfigError
        Naming the setting and what was expected.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".yaml") as hparams_file:
    ...     _ = hparams_file.write("data_folder: !PLACEHOLDER\\ngm_mode: project\\n")
    ...     hparams_file.flush()
    ...     check_hparams_file(hparams_file.name, "data_folder: /data\\ngm_mode: pcgrad")
    Traceback (most recent call last):
    ...
    gmsep.training.config_checks.ConfigError: gm_mode: 'pcgrad' is not one of none, project, remedy, published
    """
    if not os.path.isfile(hparams_file):
        raise ConfigError(
            f"{hparams_file}: experiment file not found (the experiments are "
            "in hparams/)"
        )
    yaml = ruamel.yaml.YAML()
    try:
        with open(hparams_file, encoding="utf-8") as fin:
            raw = yaml.load(fin) or {}
        given = ruamel.yaml.YAML(typ="safe").load(overrides or "") or {}
    except ruamel.yaml.constructor.DuplicateKeyError as err:
        key = re.search(r'duplicate key "([^"]+)"', str(err))
        raise ConfigError(
            f"{key[1] if key else 'a setting'}: given more than once on the "
            "command line"
        ) from None
    except ruamel.yaml.YAMLError as err:
        raise ConfigError(
            f"{hparams_file}: invalid YAML ({' '.join(str(err).split())})"
        ) from None
    check_override_types(hparams_file, given)
    for key, value in raw.items():
        tag = getattr(getattr(value, "tag", None), "value", None)
        if tag == "!PLACEHOLDER" and key not in given:
            raise ConfigError(
                f"{key}: required but not set ({hparams_file} leaves it a "
                f"!PLACEHOLDER); give it on the command line: --{key} <value>"
            )
    from gmsep.training.experiment import route_overrides

    with open(hparams_file, encoding="utf-8") as fin:
        try:
            text = resolve_references(fin, route_overrides(hparams_file, given))
        except ValueError as error:  # a section's placeholder, not given
            match = re.match(r"'(\w+)' is a !PLACEHOLDER", str(error))
            if match is None:
                raise
            raise ConfigError(
                f"{match[1]}: required but not set (an experiment that "
                f"{hparams_file} includes leaves it a !PLACEHOLDER); give it "
                f"on the command line: --{match[1]} <value>"
            ) from None
    settings = {}
    for key, value in _settings(yaml.load(text) or {}):
        choices = CHOICES.get(key)
        if choices is not None and value not in choices:
            raise ConfigError(
                f"{key}: {value!r} is not one of {', '.join(choices)}"
            )
        settings.setdefault(key, value)
    return settings


def _plain_defaults(hparams_file):
    """Setting -> its value where the experiment file or a section gives it
    as a plain number or boolean (the experiment's own value first)."""
    from gmsep.training.experiment import _section_files

    with open(hparams_file, encoding="utf-8") as fin:
        values = ruamel.yaml.YAML().load(fin) or {}
    # tagged entries (!ref, !new) load as TaggedScalar or maps: skipped
    defaults = {
        key: value.__float__() if isinstance(value, float) else value
        for key, value in values.items()
        if isinstance(value, (bool, int, float))
    }
    for path in _section_files(hparams_file).values():
        for key, value in _plain_defaults(path).items():
            defaults.setdefault(key, value)
    return defaults


def check_override_types(hparams_file, given):
    """Refuses command-line values of the wrong kind: text for a number
    (``--lr abc``), a fraction for an integer, anything but true/false for a
    switch, a number that is not finite, or not positive where only a
    positive one makes sense.

    Arguments
    ---------
    hparams_file : str
        The experiment file.
    given : dict
        The overrides, parsed.

    Raises
    ------
    ConfigError
        Naming the setting, the value and what was expected.

    Example
    -------
    >>> check_override_types("hparams/demo.yaml", {"lr": "abc"})
    Traceback (most recent call last):
    ...
    gmsep.training.config_checks.ConfigError: lr: 'abc' is not a number (the default is 0.00015)
    """
    defaults = _plain_defaults(hparams_file)
    for key, value in given.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}: {value} is not a finite number")
        if key not in defaults:
            continue
        default = defaults[key]
        if isinstance(default, bool):
            ok, expected = isinstance(value, bool), "true or false"
        elif isinstance(default, int) and key not in FRACTIONAL:
            ok = isinstance(value, int) and not isinstance(value, bool)
            expected = "an integer"
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            expected = "a number"
        if not ok:
            raise ConfigError(
                f"{key}: {value!r} is not {expected} (the default is {default})"
            )
        if key in POSITIVE and value <= 0:
            raise ConfigError(f"{key}: {value}, expected a positive value")
        if key in NON_NEGATIVE and value < 0:
            raise ConfigError(f"{key}: {value}, expected 0 or more")


def _settings(tree):
    """(key, value) of every mapping of a resolved YAML tree, the included
    sections' too (a derived experiment sets gm_mode in its section)."""
    for key, value in tree.items():
        yield key, value
        if isinstance(value, dict):
            yield from _settings(value)


def accumulation_scales(objectives, grad_accumulation_factor):
    """The factors of the main and auxiliary losses under gradient accumulation.

    A loss that averages over the batch is divided by the number k of
    micro-batches, so that the accumulated gradient is the large batch's; a
    loss summed over the batch is not. Each criterion says which it is in
    ``batch_reduction`` ("mean" or "sum").

    Arguments
    ---------
    objectives : list of gmsep.losses.Objective
    grad_accumulation_factor : int
        k, the micro-batches per optimizer step.

    Returns
    -------
    main_scale, aux_scale : float

    Raises
    ------
    ConfigError
        With k > 1, when a criterion does not declare its batch reduction or
        the objectives of one task reduce differently.

    Example
    -------
    >>> from gmsep.losses import EnhancedFeatureMSE, Objective, PITNegSISNR
    >>> objectives = [Objective("ss", PITNegSISNR()),
    ...     Objective("se", EnhancedFeatureMSE("sum"), 0.1, auxiliary=True)]
    >>> accumulation_scales(objectives, 4)
    (0.25, 1.0)
    """
    if grad_accumulation_factor < 1:
        raise ConfigError(
            "grad_accumulation_factor: expected a positive integer, got "
            f"{grad_accumulation_factor}"
        )
    if grad_accumulation_factor == 1:
        return 1.0, 1.0
    scales = []
    for auxiliary in (False, True):
        reductions = {
            getattr(o.criterion, "batch_reduction", None)
            for o in objectives
            if o.auxiliary == auxiliary
        }
        if not reductions <= {"mean", "sum"} or len(reductions) > 1:
            raise ConfigError(
                f"grad_accumulation_factor: {grad_accumulation_factor} needs "
                "every criterion of a task to declare one batch_reduction, "
                "'mean' or 'sum', so that the accumulated gradient is the "
                f"large batch's; the {'auxiliary' if auxiliary else 'main'} "
                f"objectives have {sorted(map(str, reductions))}"
            )
        sums = reductions == {"sum"}
        scales.append(1.0 if sums else 1.0 / grad_accumulation_factor)
    return tuple(scales)


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
    gmsep.training.config_checks.ConfigError: precision: fp16 needs a CUDA device (device is cpu); use --precision bf16 (CPU mixed precision) or fp32
    """
    run_opts = run_opts or {}
    device = run_option("device", hparams, run_opts)
    if device is None:
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"device: {device!r} is not a torch device (cpu, cuda, cuda:1, ...)"
        ) from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device: {device}, but no CUDA device is available; use --device cpu"
        )
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
    accumulation_scales(
        objectives, run_option("grad_accumulation_factor", hparams, run_opts, 1)
    )
    separator = hparams.get("separator")
    auxiliary = [o.name for o in objectives if o.auxiliary]
    if auxiliary and separator is not None and separator.enhancer is None:
        raise ConfigError(
            f"objectives: auxiliary objective(s) {auxiliary} need an enhancer, "
            "but the separator has none (enhancer: null); remove them for a "
            "separator-only baseline"
        )
    gm = hparams.get("gradient_modulation")
    if hparams.get("gm_params") == "enhancer" and gm and gm.mode == "published":
        raise ConfigError(
            "gm_params: enhancer needs the SE gradient, which gm_mode: "
            "published never computes; use gm_params: encoder_enhancer"
        )
    num_spks = hparams.get("num_spks")
    if separator is not None and separator.num_spks != num_spks:
        raise ConfigError(
            f"num_spks: {num_spks}, but the separator is built for "
            f"{separator.num_spks} speakers"
        )

    intervals = {
        name: run_option(name, hparams, run_opts, 0)
        for name in ("ckpt_interval_minutes", "ckpt_interval_steps")
    }
    if all(value > 0 for value in intervals.values()):
        raise ConfigError(
            "ckpt_interval_minutes and ckpt_interval_steps: only one may be "
            f"positive, got {intervals}; set the other to 0"
        )
    for name in PERCEPTUAL_NAMES:
        if hparams.get(f"test_{name}", True):
            for package in missing_packages([name]):
                raise ConfigError(
                    f"test_{name}: True, but the {package} package is not "
                    f"installed (pip install {package}); or --test_{name} False"
                )
    data_folder = hparams.get("data_folder")
    if data_folder is not None and not os.path.isdir(data_folder):
        raise ConfigError(
            f"data_folder: {data_folder} is not an existing folder"
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
    if not os.path.isfile(csv_path):
        raise ConfigError(
            f"{csv_path}: CSV not found (run the data preparation, or set "
            "skip_prep: False)"
        )
    with open(csv_path, newline="", encoding="utf-8") as csv_file:
        header = next(csv.reader(csv_file), [])
    found = count_source_columns(header)
    if found != num_spks:
        raise ConfigError(
            f"num_spks: {num_spks}, but {csv_path} has {found} source "
            f"column(s) ({', '.join(c for c in header if c.endswith('_wav'))}); "
            f"set --num_spks {found} or prepare the Libri{num_spks}Mix data"
        )
