"""Warm start from a SpeechBrain SepFormer (or DPRNN) folder.

SpeechBrain publishes its separators as a folder with ``hyperparams.yaml``
and ``encoder.ckpt``, ``masknet.ckpt``, ``decoder.ckpt`` (sepformer-wham,
-whamr, -libri2mix, ...). With ``pretrained_separator: <such a folder>`` the
network's Encoder, MaskNet and Decoder start from those weights, through
SpeechBrain's usual ``Pretrainer``; the EnhanceNet, which no SpeechBrain
separator has, starts fresh. The paper trains from scratch:
``pretrained_separator: null``, the default.

Authors
 * gmsep contributors 2026
"""

from pathlib import Path

from speechbrain.utils.fetching import FetchConfig, LocalStrategy
from speechbrain.utils.parameter_transfer import Pretrainer

from gmsep.inference.pretrained import strict_parameter_transfer
from gmsep.training.config_checks import ConfigError

# The modules a SpeechBrain separator folder provides.
SEPARATOR_MODULES = ("encoder", "masknet", "decoder")


def separator_pretrainer(hparams):
    """The Pretrainer that warm-starts the separator, or None when
    ``pretrained_separator`` is not set. Checks the folder's files at once,
    so that a wrong path fails before any data work.

    Arguments
    ---------
    hparams : dict
        The loaded experiment: ``pretrained_separator`` (a folder or null),
        and ``modules``.

    Returns
    -------
    speechbrain.utils.parameter_transfer.Pretrainer or None
        Loads strictly: weights that do not fit the modules (another size,
        another number of speakers) are an error naming the file.

    Raises
    ------
    ConfigError
        Naming the folder or the ``.ckpt`` file that is missing.
    """
    folder = hparams.get("pretrained_separator")
    if not folder:
        return None
    folder = Path(folder).absolute()
    if not folder.is_dir():
        raise ConfigError(
            f"pretrained_separator: {folder} is not a folder (expected a "
            "local SpeechBrain separator folder with encoder.ckpt, "
            "masknet.ckpt and decoder.ckpt)"
        )
    for name in SEPARATOR_MODULES:
        if not (folder / f"{name}.ckpt").is_file():
            raise ConfigError(
                f"pretrained_separator: {folder / f'{name}.ckpt'} not found "
                "(a SpeechBrain separator folder holds encoder.ckpt, "
                "masknet.ckpt and decoder.ckpt)"
            )
    return Pretrainer(
        loadables={
            name: hparams["modules"][name] for name in SEPARATOR_MODULES
        },
        paths={
            name: str(folder / f"{name}.ckpt") for name in SEPARATOR_MODULES
        },
        custom_hooks={
            name: strict_parameter_transfer for name in SEPARATOR_MODULES
        },
    )


def load_separator(pretrainer):
    """Loads the folder's weights into the modules. The files are read in
    place (never linked or copied: nothing is written, nothing stale
    reused), so every process of a DDP run can load them itself."""
    pretrainer.collect_files(
        local_strategy=LocalStrategy.NO_LINK,
        fetch_config=FetchConfig(overwrite=True, allow_network=False),
    )
    pretrainer.load_collected()
