"""Loading an experiment file and its sections.

An experiment file holds what differs between experiments (data,
objectives, gradient modulation) and includes the sections it shares with
others, SpeechBrain's ``!include:`` idiom::

    model: !include:models/unified-sepformer.yaml     # the network
        num_spks: !ref <num_spks>
    training: !include:training/recipe.yaml           # the training recipe
        sample_rate: !ref <sample_rate>
        ...

Two things make such a file behave as one flat experiment:

- a command-line override of a setting that only a section defines
  (``--d_model 64``, ``--lr 0.001``) is routed into that section's include
  arguments (``model: {d_model: 64}``), so every override of the flat layout
  keeps working; a setting that no part defines is refused by name;
- after loading, the sections' entries are also experiment entries
  (``hparams["encoder"]``, ``hparams["epoch_counter"]``), where the Brain,
  ``train.py`` and SpeechBrain's run options look for them.

Authors
 * gmsep contributors 2026
"""

import os

import ruamel.yaml
from hyperpyyaml import load_hyperpyyaml

from gmsep.training.config_checks import ConfigError

INCLUDE_TAG = "!include:"


def included_sections(hparams_file):
    """The experiment file's sections and the settings each defines.

    Arguments
    ---------
    hparams_file : str
        The experiment's HyperPyYAML file.

    Returns
    -------
    dict
        Section name (e.g. ``model``) -> the set of its file's top-level keys.
    """
    yaml = ruamel.yaml.YAML()
    with open(hparams_file, encoding="utf-8") as fin:
        tree = yaml.load(fin) or {}
    folder = os.path.dirname(os.path.abspath(hparams_file))
    sections = {}
    for name, node in tree.items():
        tag = getattr(getattr(node, "tag", None), "value", None) or ""
        if not tag.startswith(INCLUDE_TAG):
            continue
        with open(
            os.path.join(folder, tag[len(INCLUDE_TAG) :]), encoding="utf-8"
        ) as fin:
            sections[name] = set(yaml.load(fin) or {})
    return sections


def route_overrides(hparams_file, overrides=None):
    """Moves the overrides of settings that only a section defines into
    that section.

    Arguments
    ---------
    hparams_file : str
        The experiment's HyperPyYAML file.
    overrides : str or dict, optional
        As ``sb.parse_arguments`` gives them (YAML text) or a mapping.

    Returns
    -------
    dict
        Overrides for ``load_hyperpyyaml`` on ``hparams_file``.

    Raises
    ------
    ConfigError
        For a setting that neither the file nor any of its sections defines.
    """
    if isinstance(overrides, str) or overrides is None:
        overrides = ruamel.yaml.YAML(typ="safe").load(overrides or "") or {}
    yaml = ruamel.yaml.YAML()
    with open(hparams_file, encoding="utf-8") as fin:
        top_level = set(yaml.load(fin) or {})
    sections = included_sections(hparams_file)
    routed = {}
    for key, value in overrides.items():
        if key in top_level:
            routed[key] = value
            continue
        owners = [name for name, keys in sections.items() if key in keys]
        if not owners:
            raise ConfigError(
                f"{key}: not a setting of {hparams_file} nor of its sections "
                f"({', '.join(sections) or 'none'}); check its spelling"
            )
        # A setting two sections define is set in both (e.g. sample_rate).
        for owner in owners:
            routed.setdefault(owner, {})[key] = value
    return routed


def load_experiment(hparams_file, overrides=None):
    """Loads an experiment file, overrides routed, sections flattened.

    Arguments
    ---------
    hparams_file : str
        The experiment's HyperPyYAML file.
    overrides : str or dict, optional
        Command-line overrides (YAML text, as ``sb.parse_arguments`` gives
        them) or a mapping.

    Returns
    -------
    hparams : dict
        The loaded experiment; each section's entries are also top-level
        entries, unless the file itself defines the same name.
    overrides : dict
        The routed overrides, for ``sb.create_experiment_directory``.
    """
    routed = route_overrides(hparams_file, overrides)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, routed)
    for name in included_sections(hparams_file):
        for key, value in hparams[name].items():
            hparams.setdefault(key, value)
    return hparams, routed
