"""Checkpoints that a killed run can always resume from.

SpeechBrain's ``Checkpointer`` creates ``CKPT+<time>`` with its ``CKPT.yaml``
first and then writes one file per recoverable into it. A run killed in
between leaves a directory that recovery takes for a complete checkpoint
(the newest one, so it is the one loaded) and then fails to load.
``AtomicCheckpointer`` lets SpeechBrain's own ``save_checkpoint`` write the
checkpoint into a hidden staging directory and renames the finished
directory to its ``CKPT+`` place only once complete; a rename within a file
system is atomic, so a ``CKPT+`` directory is either whole or absent.
Staging directories left by a killed run are never listed as checkpoints and
are removed at the next save.

Authors
 * gmsep contributors 2026
"""

import logging
import os
import shutil
import time
from collections.abc import Mapping

import torch
from speechbrain.utils.checkpoints import CKPT_PREFIX, Checkpoint, Checkpointer
from speechbrain.utils.distributed import (
    ddp_barrier,
    ddp_broadcast,
    if_main_process,
)

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"


def read_state_dict(path, error=ValueError):
    """Reads a ``.ckpt`` file that must hold a state_dict, safely.

    Arguments
    ---------
    path : str or os.PathLike
        The file (``torch.save`` of a module's state_dict).
    error : type
        The exception to raise, named for the caller's layer.

    Returns
    -------
    dict
        Parameter name -> tensor.

    Raises
    ------
    error
        Naming the file when it is truncated, corrupt, not a torch file or
        holds something else than tensors by name.

    Example
    -------
    >>> path = getfixture("tmp_path") / "notes.ckpt"
    >>> _ = path.write_text("not weights")
    >>> read_state_dict(path)
    Traceback (most recent call last):
    ...
    ValueError: ...notes.ckpt: not a readable checkpoint...
    """
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except (
        Exception
    ) as err:  # a damaged file raises anything, KeyError to struct.error
        # torch's own message would advise weights_only=False: never for a
        # file that cannot be trusted to be what it claims.
        raise error(
            f"{path}: not a readable checkpoint (truncated, corrupt, or not "
            f"written by torch.save of a state_dict: {type(err).__name__})"
        ) from err
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in state_dict.values()
    ):
        raise error(
            f"{path}: holds a {type(state_dict).__name__}, expected a "
            "state_dict (parameter name -> tensor)"
        )
    return state_dict


class AtomicCheckpointer(Checkpointer):
    """A ``Checkpointer`` whose checkpoints appear complete or not at all.

    Same arguments and behaviour as
    ``speechbrain.utils.checkpoints.Checkpointer``; only ``save_checkpoint``
    differs. Use it in the hparams in place of SpeechBrain's.

    Example
    -------
    >>> import tempfile, torch
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     model = torch.nn.Linear(2, 2)
    ...     checkpointer = AtomicCheckpointer(folder, {"model": model})
    ...     saved = checkpointer.save_checkpoint()
    ...     sorted(p.name for p in saved.path.iterdir())
    ['CKPT.yaml', 'model.ckpt']
    """

    def save_checkpoint(
        self, meta=None, end_of_epoch=True, name=None, verbosity=logging.INFO
    ):
        """Saves a checkpoint through a staging directory.

        SpeechBrain's own ``save_checkpoint`` does the writing, every hook
        on every process as usual, but in a ``Checkpointer`` of the same
        recoverables whose folder is ``.staging-<name>`` inside this one;
        the finished ``CKPT+<name>`` is then renamed out of it.

        Arguments
        ---------
        meta : mapping, optional
            Added to the meta file (``unixtime`` and ``end-of-epoch`` are
            always there).
        end_of_epoch : bool
            Whether the checkpoint is at the end of an epoch.
        name : str, optional
            A custom name (prefixed with ``CKPT+``); an existing checkpoint of
            that name is replaced. By default a name from the time.
        verbosity : int
            The logging level of the message.

        Returns
        -------
        Checkpoint or None
            The saved checkpoint on the main process, None on the others.
        """
        if if_main_process():
            self._remove_staging_dirs()
            if name is None:
                name = self._new_checkpoint_name()
        name = ddp_broadcast(name, src=0)
        staging = Checkpointer(
            self.checkpoints_dir / (STAGING_PREFIX + name),
            recoverables=self.recoverables,
            custom_save_hooks=self.custom_save_hooks,
        )
        staged = staging.save_checkpoint(
            meta or {}, end_of_epoch, name=name, verbosity=logging.DEBUG
        )
        # Some hooks write on every process: all must be done before the rename.
        ddp_barrier()
        if not if_main_process():
            return None

        ckpt_dir = self.checkpoints_dir / staged.path.name
        _fsync_directory(staged.path)
        if ckpt_dir.exists():
            replaced = staging.checkpoints_dir / "old"
            os.rename(ckpt_dir, replaced)
            os.rename(staged.path, ckpt_dir)
        else:
            os.rename(staged.path, ckpt_dir)
        _fsync_directory(self.checkpoints_dir, files=False)
        shutil.rmtree(staging.checkpoints_dir)

        ckpt_type = "end-of-epoch" if end_of_epoch else "intra-epoch"
        logger.log(verbosity, f"Saved an {ckpt_type} checkpoint in {ckpt_dir}")
        paramfiles = {
            obj_name: ckpt_dir / path.name
            for obj_name, path in staged.paramfiles.items()
        }
        return Checkpoint(ckpt_dir, staged.meta, paramfiles)

    def _new_checkpoint_name(self):
        """A name from the time, as SpeechBrain's, free in this folder."""
        stamp = time.strftime("%Y-%m-%d+%H-%M-%S")
        suffix = 0
        while (
            self.checkpoints_dir / f"{CKPT_PREFIX}+{stamp}+{suffix:02d}"
        ).exists():
            suffix += 1
        return f"{stamp}+{suffix:02d}"

    def _remove_staging_dirs(self):
        """Removes what saves interrupted by a kill left behind."""
        for path in self.checkpoints_dir.glob(STAGING_PREFIX + "*"):
            logger.info(f"Removing an incomplete checkpoint: {path}")
            shutil.rmtree(path)


def _fsync_directory(path, files=True):
    """Flushes a directory entry (and its files) to disk, so that the rename
    that publishes a checkpoint never precedes its content."""
    if files:
        for file_path in path.iterdir():
            with open(file_path, "rb") as file:
                os.fsync(file.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
