"""A JSON description of what every experiment file resolves to, so that a
change to the hparams layout can be checked to change no value.

The model section's entries are described at the top level, wherever a file
keeps them, and the layout-only containers (``modules``, the checkpointer's
recoverables) are left out: their shape is what a layout change may change.

Written once from the files before a layout change::

    PYTHONPATH=modules python -m tests.hparams_snapshot > tests/data/resolved_hparams.json
"""

import contextlib
import functools
import glob
import hashlib
import json
import os
import sys
import tempfile

import torch
from gmsep.training.experiment import load_experiment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVERRIDES = {"data_folder": "/data/LibriMix"}
# Containers whose shape is the layout itself (described in tests instead).
LAYOUT_KEYS = ("experiment", "model", "training", "modules", "checkpointer")


def describe(value):
    """A JSON-able description: scalars as they are, a module by its class,
    a digest of its printed structure and its parameter count, a partial by its function and arguments."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, torch.nn.Module):
        # The printed module names every layer and size; the plain
        # attributes of its parts add what printing omits (e.g. the chunk
        # size K of a Dual_Path_Model).
        settings = [
            (name, _plain_attributes(part))
            for name, part in value.named_modules()
        ]
        structure = f"{value}\n{settings}"
        return {
            "class": type(value).__name__,
            "structure": hashlib.sha1(structure.encode()).hexdigest()[:16],
            "parameters": sum(p.numel() for p in value.parameters()),
        }
    if isinstance(value, functools.partial):
        return {
            "function": f"{value.func.__module__}.{value.func.__qualname__}",
            "keywords": describe(value.keywords),
        }
    return {
        "class": type(value).__name__,
        "attributes": _plain_attributes(value),
    }


def _plain_attributes(obj):
    """An object's attributes that are plain values, sorted by name."""
    return {
        k: describe(v)
        for k, v in sorted(vars(obj).items())
        if not k.startswith("_")
        and (v is None or isinstance(v, (bool, int, float, str, list, tuple)))
    }


def resolved_values(hparams_file):
    """Describes every entry of an experiment file, its sections' entries
    at the top level."""
    # The file's own output folder is described (a path relative to the
    # working directory), so the load runs in a scratch working directory:
    # the checkpointer creates its save folder there. A flat file (no
    # sections) loads the same way.
    with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
        hparams, _ = load_experiment(os.path.abspath(hparams_file), OVERRIDES)
    return {
        key: describe(value)
        for key, value in hparams.items()
        if key not in LAYOUT_KEYS and not key.startswith("__")
    }


def experiment_files():
    """The experiment files of hparams/ (not the included sections)."""
    return sorted(glob.glob(os.path.join(REPO, "hparams", "*.yaml")))


if __name__ == "__main__":
    snapshot = {
        os.path.basename(path): resolved_values(path)
        for path in experiment_files()
    }
    json.dump(snapshot, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
