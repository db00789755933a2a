"""Checkpoints that a killed run can always resume from.

SpeechBrain's ``Checkpointer`` creates ``CKPT+<time>`` with its ``CKPT.yaml``
first and then writes one file per recoverable into it. A run killed in
between leaves a directory that recovery takes for a complete checkpoint
(the newest one, so it is the one loaded) and then fails to load.
``AtomicCheckpointer`` writes every file into a hidden staging directory
and renames it to its ``CKPT+`` name only once complete; a rename within a
file system is atomic, so a ``CKPT+`` directory is either whole or absent.
Staging directories left by a killed run are never listed as checkpoints and
are removed at the next save.

Authors
 * gmsep contributors 2026
"""

import logging
import os
import shutil

from speechbrain.utils.checkpoints import (
    DEFAULT_SAVE_HOOKS,
    METAFNAME,
    PARAMFILE_EXT,
    Checkpoint,
    Checkpointer,
    get_default_hook,
)
from speechbrain.utils.distributed import (
    ddp_barrier,
    ddp_broadcast,
    if_main_process,
)

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"


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
        staging_dir = None
        if if_main_process():
            self._remove_staging_dirs()
            if name is None:
                ckpt_dir = self._new_checkpoint_dirpath()
            else:
                ckpt_dir = self._custom_checkpoint_dirpath(name)
            staging_dir = ckpt_dir.with_name(STAGING_PREFIX + ckpt_dir.name)
            staging_dir.mkdir()
        staging_dir = ddp_broadcast(staging_dir, src=0)

        for obj_name, obj in self.recoverables.items():
            savepath = staging_dir / f"{obj_name}{PARAMFILE_EXT}"
            hook = self.custom_save_hooks.get(obj_name)
            if hook is None:
                hook = get_default_hook(obj, DEFAULT_SAVE_HOOKS)
            if hook is None:
                raise RuntimeError(
                    f"Don't know how to save {type(obj)} ({obj_name}): "
                    "register a default hook or add a custom hook for it."
                )
            hook(obj, savepath)
        # Some hooks write on every process: all must be done before the rename.
        ddp_barrier()
        if not if_main_process():
            return None

        saved_meta = self._save_checkpoint_metafile(
            staging_dir / METAFNAME, meta or {}, end_of_epoch
        )
        _fsync_directory(staging_dir)
        if ckpt_dir.exists():
            replaced = ckpt_dir.with_name(
                STAGING_PREFIX + "old-" + ckpt_dir.name
            )
            os.rename(ckpt_dir, replaced)
            os.rename(staging_dir, ckpt_dir)
            shutil.rmtree(replaced)
        else:
            os.rename(staging_dir, ckpt_dir)
        _fsync_directory(self.checkpoints_dir, files=False)

        ckpt_type = "end-of-epoch" if end_of_epoch else "intra-epoch"
        logger.log(verbosity, f"Saved an {ckpt_type} checkpoint in {ckpt_dir}")
        paramfiles = {
            path.stem: path
            for path in ckpt_dir.iterdir()
            if path.suffix == PARAMFILE_EXT
        }
        return Checkpoint(ckpt_dir, saved_meta, paramfiles)

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
