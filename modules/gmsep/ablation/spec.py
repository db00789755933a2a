"""The ablation file: which variants of which experiment, over which seeds.

An ablation file is plain YAML (paths relative to it)::

    hparams: ../demo.yaml          # the experiment the variants change
    reference: sepformer           # the variant every other is compared to
    seeds: [1, 2, 3]
    settings:                      # given to every run (same steps, same crops)
        N_epochs: 2
    variants:
        - name: sepformer
          description: SepFormer alone (no EnhanceNet)
          hparams: ../demo-sepformer.yaml
        - name: project
          description: unified, GM project (the paper's)
          settings: {gm_mode: project}

A variant's ``settings`` are added to the common ones (and win); its
``hparams`` replaces the ablation's. Each setting is given to ``train.py``
as ``--key value``, as a user would.

Authors
 * gmsep contributors 2026
"""

import os
import re
from dataclasses import dataclass, field

import yaml

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Chosen by the ablation itself, per run.
RESERVED_SETTINGS = ("seed", "output_folder", "data_folder")


class AblationError(ValueError):
    """The ablation file or a run is unusable; the message names it."""


@dataclass(frozen=True)
class Variant:
    """One variant: an experiment file and the settings given to it.

    Arguments
    ---------
    name : str
        Names the variant in the report and its runs' folder.
    hparams : str
        The experiment file (absolute path).
    settings : dict
        Setting -> value, given as ``--key value``.
    description : str
        One line for the report.
    """

    name: str
    hparams: str
    settings: dict = field(default_factory=dict)
    description: str = ""

    def overrides(self):
        """The command-line arguments of the settings, ``--key value``.

        Example
        -------
        >>> Variant("se0", "demo.yaml", {"se_weight": 0.0}).overrides()
        ['--se_weight', '0.0']
        """
        arguments = []
        for key, value in self.settings.items():
            if isinstance(value, bool):
                value = str(value)  # YAML reads True, not "true" as a str
            arguments += [f"--{key}", str(value)]
        return arguments


@dataclass(frozen=True)
class AblationSpec:
    """A loaded ablation file.

    Arguments
    ---------
    path : str
        The file.
    variants : tuple of Variant
        In the report's order.
    reference : str
        The name of the variant the others are compared to.
    seeds : tuple of int
    """

    path: str
    variants: tuple
    reference: str
    seeds: tuple

    def select(self, names=None, seeds=None):
        """The spec restricted to some variants (the reference is kept) and
        other seeds.

        Arguments
        ---------
        names : sequence of str, optional
            Variant names; None keeps all.
        seeds : sequence of int, optional
            None keeps the file's.

        Returns
        -------
        AblationSpec
        """
        variants = self.variants
        if names:
            known = {variant.name for variant in variants}
            unknown = [name for name in names if name not in known]
            if unknown:
                raise AblationError(
                    f"--variants: {', '.join(unknown)} not in {self.path} "
                    f"(its variants: {', '.join(sorted(known))})"
                )
            wanted = {*names, self.reference}
            variants = tuple(v for v in variants if v.name in wanted)
        if seeds is not None:
            seeds = _seeds(list(seeds), "--seeds")
        return AblationSpec(
            self.path, variants, self.reference, seeds or self.seeds
        )


def load_spec(path):
    """Reads and checks an ablation file.

    Arguments
    ---------
    path : str
        The YAML file.

    Returns
    -------
    AblationSpec

    Raises
    ------
    AblationError
        Naming the file, the entry and what was expected.
    """
    if not os.path.isfile(path):
        raise AblationError(f"{path}: ablation file not found")
    try:
        with open(path, encoding="utf-8") as fin:
            tree = yaml.safe_load(fin)
    except yaml.YAMLError as err:
        raise AblationError(
            f"{path}: invalid YAML ({' '.join(str(err).split())})"
        ) from None
    if not isinstance(tree, dict):
        raise AblationError(f"{path}: expected a mapping of hparams, variants")
    unknown = set(tree) - {
        "hparams",
        "reference",
        "seeds",
        "settings",
        "variants",
    }
    if unknown:
        raise AblationError(f"{path}: unknown entries {sorted(unknown)}")
    folder = os.path.dirname(os.path.abspath(path))
    default_hparams = tree.get("hparams")
    common = _settings(tree.get("settings"), f"{path}: settings")
    entries = tree.get("variants")
    if not isinstance(entries, list) or not entries:
        raise AblationError(f"{path}: variants: expected a non-empty list")
    variants = []
    for index, entry in enumerate(entries):
        where = f"{path}: variants[{index}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise AblationError(f"{where}: expected a mapping with a name")
        name = str(entry["name"])
        if not NAME_PATTERN.match(name):
            raise AblationError(
                f"{where}: name {name!r}: letters, digits, '.', '_', '-' only"
            )
        extra = set(entry) - {"name", "description", "hparams", "settings"}
        if extra:
            raise AblationError(f"{where}: unknown entries {sorted(extra)}")
        hparams = entry.get("hparams", default_hparams)
        if hparams is None:
            raise AblationError(
                f"{where}: no hparams (give one here or at the top)"
            )
        hparams = os.path.normpath(os.path.join(folder, hparams))
        if not os.path.isfile(hparams):
            raise AblationError(f"{where}: hparams {hparams} not found")
        settings = {**common, **_settings(entry.get("settings"), where)}
        variants.append(
            Variant(name, hparams, settings, str(entry.get("description", "")))
        )
    names = [variant.name for variant in variants]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise AblationError(f"{path}: variants named twice: {duplicates}")
    reference = str(tree.get("reference", names[0]))
    if reference not in names:
        raise AblationError(
            f"{path}: reference {reference!r} is not a variant ({names})"
        )
    seeds = _seeds(tree.get("seeds", [1]), f"{path}: seeds")
    return AblationSpec(path, tuple(variants), reference, seeds)


def _settings(value, where):
    """A settings mapping, checked."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AblationError(f"{where}: expected a mapping of setting: value")
    for key, item in value.items():
        if key in RESERVED_SETTINGS:
            raise AblationError(
                f"{where}: {key} is set by the ablation for each run"
            )
        if isinstance(item, (dict, list)):
            raise AblationError(f"{where}: {key}: expected a single value")
    return dict(value)


def _seeds(value, where):
    """A non-empty list of distinct integers."""
    if (
        not isinstance(value, list)
        or not value
        or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in value
        )
        or len(set(value)) != len(value)
    ):
        raise AblationError(f"{where}: expected a list of distinct integers")
    return tuple(value)
