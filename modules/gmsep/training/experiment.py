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

An experiment that differs from another by a few settings includes it whole,
as its one section, so that the two cannot drift apart::

    experiment: !include:sepformer-gm-libri2mix.yaml
        experiment_name: sepformer-published-libri2mix
        gm_mode: published

Overrides then reach the section of the included experiment that defines
them (``experiment: {training: {lr: 0.001}}``) and every entry is flattened.

Authors
 * gmsep contributors 2026
"""

import os

import ruamel.yaml
from hyperpyyaml import load_hyperpyyaml

from gmsep.training.config_checks import ConfigError

INCLUDE_TAG = "!include:"


def _section_files(hparams_file):
    """The experiment file's sections: name -> the file it includes."""
    yaml = ruamel.yaml.YAML()
    with open(hparams_file, encoding="utf-8") as fin:
        tree = yaml.load(fin) or {}
    folder = os.path.dirname(os.path.abspath(hparams_file))
    files = {}
    for name, node in tree.items():
        tag = getattr(getattr(node, "tag", None), "value", None) or ""
        if tag.startswith(INCLUDE_TAG):
            files[name] = os.path.join(folder, tag[len(INCLUDE_TAG) :])
    return files


def _top_level(hparams_file):
    """The top-level keys of a YAML file."""
    with open(hparams_file, encoding="utf-8") as fin:
        return set(ruamel.yaml.YAML().load(fin) or {})


def included_sections(hparams_file):
    """The experiment file's sections and the settings each defines.

    A section may itself be an experiment (a derived experiment includes
    the one it changes, e.g. ``experiment: !include:sepformer-gm-...``): its
    settings are then its own and those of its sections.

    Arguments
    ---------
    hparams_file : str
        The experiment's HyperPyYAML file.

    Returns
    -------
    dict
        Section name (e.g. ``model``) -> the set of the settings it defines.
    """
    sections = {}
    for name, path in _section_files(hparams_file).items():
        keys = _top_level(path)
        for nested in included_sections(path).values():
            keys |= nested
        sections[name] = keys
    return sections


def _merge(into, update):
    """Merges nested override mappings (``{"model": {...}}``) in place."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def route_overrides(hparams_file, overrides=None):
    """Moves the overrides of settings that only a section defines into
    that section (into the section's own section where it is an
    experiment).

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
    top_level = _top_level(hparams_file)
    files = _section_files(hparams_file)
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
            _merge(
                routed.setdefault(owner, {}),
                route_overrides(files[owner], {key: value}),
            )
    return routed


def _flatten(hparams, values, hparams_file):
    """Adds the entries of the sections of ``values`` (loaded from
    ``hparams_file``) to ``hparams``, then those of their sections."""
    files = _section_files(hparams_file)
    for name in files:
        for key, value in values[name].items():
            hparams.setdefault(key, value)
    for name, path in files.items():
        _flatten(hparams, values[name], path)


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
        The loaded experiment; each section's entries (and its sections')
        are also top-level entries, unless the file itself, or a section
        nearer the top, defines the same name.
    overrides : dict
        The routed overrides, for ``sb.create_experiment_directory``.
    """
    routed = route_overrides(hparams_file, overrides)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, routed)
    _flatten(hparams, hparams, hparams_file)
    return hparams, routed
