"""Checkpoints of the one-module layout, and their conversion.

Earlier gmsep checkpointed the network as one recoverable, ``separator.ckpt``
(keys ``encoder.*``, ``enhancer.*``, ``masknet.*``, ``decoder.*``). The
network's parts are now recoverables under SpeechBrain's module names, one
``<module>.ckpt`` each, which SpeechBrain's checkpointer cannot recover from
the old file. Such checkpoints are refused with the command that converts
them::

    python -m gmsep upgrade-checkpoints results/<experiment>/<seed>/save

The conversion only adds files: every ``separator.ckpt`` stays where it is.

Authors
 * gmsep contributors 2026
"""

import os
from pathlib import Path

import torch

from gmsep.training.checkpointing import read_state_dict

LEGACY_CKPT_FILE = "separator.ckpt"
MODULE_NAMES = ("encoder", "enhancer", "masknet", "decoder")
UPGRADE_COMMAND = "python -m gmsep upgrade-checkpoints"


class LegacyCheckpointError(ValueError):
    """A checkpoint folder is of the one-module layout, or cannot be converted."""


def legacy_checkpoints(save_dir):
    """The ``CKPT+*`` folders that hold only a ``separator.ckpt``.

    Arguments
    ---------
    save_dir : str or os.PathLike
        An experiment's ``save`` folder (it need not exist).

    Returns
    -------
    list of pathlib.Path
    """
    return sorted(
        ckpt.parent
        for ckpt in Path(save_dir).glob(f"CKPT+*/{LEGACY_CKPT_FILE}")
        if not (ckpt.parent / "encoder.ckpt").is_file()
    )


def refuse_legacy_checkpoints(save_dir):
    """Raises, naming the conversion command, when ``save_dir`` holds
    checkpoints of the one-module layout.

    Arguments
    ---------
    save_dir : str or os.PathLike
        An experiment's ``save`` folder.

    Raises
    ------
    LegacyCheckpointError
    """
    legacy = legacy_checkpoints(save_dir)
    if legacy:
        raise LegacyCheckpointError(
            f"{save_dir}: {', '.join(path.name for path in legacy)} hold a "
            f"{LEGACY_CKPT_FILE} (the network as one module, written by an "
            "earlier gmsep); convert them to one file per module with: "
            f"{UPGRADE_COMMAND} {save_dir}"
        )


def split_state_dict(state_dict, source=LEGACY_CKPT_FILE):
    """Splits a UnifiedSeparator state_dict into one state_dict per module.

    Arguments
    ---------
    state_dict : dict
        Keys ``encoder.*``, ``enhancer.*``, ``masknet.*``, ``decoder.*``.
    source : str or os.PathLike
        Where it comes from, for error messages.

    Returns
    -------
    dict
        Module name -> its state_dict (prefix removed), in forward order.

    Example
    -------
    >>> sd = {"encoder.w": 1, "masknet.w": 2, "decoder.w": 3}
    >>> split_state_dict(sd)["masknet"]
    {'w': 2}
    """
    parts = {}
    for key, value in state_dict.items():
        name, _, param = key.partition(".")
        if name not in MODULE_NAMES:
            raise LegacyCheckpointError(
                f"{source}: parameter {key!r} belongs to none of "
                f"{', '.join(MODULE_NAMES)}"
            )
        parts.setdefault(name, {})[param] = value
    missing = [n for n in ("encoder", "masknet", "decoder") if n not in parts]
    if missing:
        raise LegacyCheckpointError(
            f"{source}: no parameters for {', '.join(missing)}"
        )
    return {name: parts[name] for name in MODULE_NAMES if name in parts}


def upgrade_checkpoints(save_dir):
    """Writes ``<module>.ckpt`` files next to every legacy ``separator.ckpt``.

    Each file is written under a temporary name and renamed when complete,
    so an interrupted conversion leaves no partial checkpoint; running it
    again converts what is left.

    Arguments
    ---------
    save_dir : str or os.PathLike
        An experiment's ``save`` folder.

    Returns
    -------
    list of pathlib.Path
        The converted ``CKPT+*`` folders.

    Raises
    ------
    LegacyCheckpointError
        When ``save_dir`` is not a folder.
    """
    save_dir = Path(save_dir)
    if not save_dir.is_dir():
        raise LegacyCheckpointError(f"{save_dir}: checkpoint folder not found")
    converted = legacy_checkpoints(save_dir)
    for folder in converted:
        source = folder / LEGACY_CKPT_FILE
        parts = split_state_dict(
            read_state_dict(source, LegacyCheckpointError), source
        )
        # encoder.ckpt last: its presence marks a converted folder.
        for name in sorted(parts, key=lambda name: name == "encoder"):
            state_dict = parts[name]
            target = folder / f"{name}.ckpt"
            staging = folder / f".{name}.ckpt.partial"
            torch.save(state_dict, staging)
            os.replace(staging, target)
    return converted
