"""Ready-to-use noise-robust separation from a pretrained folder.

:class:`NoiseRobustSeparation` is a SpeechBrain ``Pretrained`` interface for
the folders written by :func:`gmsep.inference.export.export_pretrained`. It separates
tensors and NumPy arrays (``separate_batch``: NumPy in, NumPy out, at any
sample rate given with them) and audio files of any sample rate and length
(``separate_file``: resampling, downmixing, chunking of long recordings), and
returns the denoised mixture of the SE branch (``enhance_batch``,
``enhance_file``).

Only local folders are loaded, always: the project runs offline, and a name
that is not a folder is almost always a typo, which SpeechBrain would
otherwise take for a Hugging Face model and retry for many seconds. Weights
are read straight from the folder (no links or copies in a cache folder), so
stale files of an earlier load can never be used.

Authors
 * gmsep contributors 2026
"""

import logging
import math
import numbers
from pathlib import Path

import numpy as np
import ruamel.yaml
import torch
import torch.nn.functional as F
import torchaudio
from ruamel.yaml.comments import TaggedScalar
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.fetching import FetchConfig, LocalStrategy

from gmsep.data.audio import (
    MIN_SAMPLE_RATE,
    MIN_SECONDS,
    check_output_format,
    normalize_outputs,
    read_audio,
    write_sources,
)
from gmsep.data.mixing import integrated_loudness
from gmsep.data.outputs import check_output_folder
from gmsep.inference.chunking import (
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_OVERLAP_SECONDS,
    separate_in_chunks,
)
from gmsep.inference.onnx_backend import ONNX_FILE, OnnxSeparator
from gmsep.inference.quantize import INT8_ONNX_FILE, QUANTIZE, quantize_torch
from gmsep.model import UnifiedSeparator
from gmsep.training.checkpointing import read_state_dict

logger = logging.getLogger(__name__)

# What can run the network (see NoiseRobustSeparation.use_backend).
BACKENDS = ("torch", "onnxruntime")

NO_ENHANCER = (
    "this model has no enhancer (a baseline separator without SE branch): it "
    "cannot return an enhanced mixture"
)


class PretrainedFolderError(ValueError):
    """A pretrained-model folder is missing, incomplete or not local."""


def strict_parameter_transfer(module, path):
    """Loads a state_dict into module, refusing missing or unexpected keys.

    SpeechBrain's default transfer only warns on a mismatch, which would
    leave randomly initialised layers in a model that seems to load fine.

    Arguments
    ---------
    module : torch.nn.Module
        The module to fill.
    path : str or os.PathLike
        Its ``.ckpt`` file (a saved state_dict).

    Example
    -------
    >>> path = getfixture("tmp_path") / "lin.ckpt"
    >>> torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    >>> strict_parameter_transfer(torch.nn.Linear(2, 3), path)
    Traceback (most recent call last):
    ...
    gmsep.inference.pretrained.PretrainedFolderError: ...lin.ckpt: does not fit its module...
    """
    state_dict = read_state_dict(path, PretrainedFolderError)
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as err:
        raise PretrainedFolderError(
            f"{path}: does not fit its module in hyperparams.yaml "
            f"({str(err).splitlines()[0]} ...)"
        ) from err


def _names_pretrained_path(hparams_path):
    """Whether a folder's hyperparams.yaml has a ``pretrained_path`` entry."""
    tree = ruamel.yaml.YAML().load(hparams_path.read_text(encoding="utf-8"))
    return "pretrained_path" in tree


def check_pretrained_folder(source, hparams_file="hyperparams.yaml"):
    """Checks that a pretrained folder is local and holds every file it names.

    Arguments
    ---------
    source : str or os.PathLike
        The folder.
    hparams_file : str
        Its configuration file.

    Returns
    -------
    pathlib.Path
        The folder, absolute.

    Raises
    ------
    PretrainedFolderError
        When source is not an existing folder (only local folders are
        supported), or hyperparams.yaml or a ``.ckpt`` file its pretrainer
        names is missing.

    Example
    -------
    >>> check_pretrained_folder("speechbrain/sepformer-wham")
    Traceback (most recent call last):
    ...
    gmsep.inference.pretrained.PretrainedFolderError: speechbrain/sepformer-wham: no such folder...
    """
    folder = Path(source).absolute()
    if not folder.is_dir():
        raise PretrainedFolderError(
            f"{source}: no such folder (only local pretrained folders are "
            "supported, no downloads; export one with `python -m gmsep export`)"
        )
    hparams_path = folder / hparams_file
    if not hparams_path.is_file():
        raise PretrainedFolderError(f"{hparams_path}: file not found")
    try:
        tree = ruamel.yaml.YAML().load(hparams_path.read_text(encoding="utf-8"))
    except ruamel.yaml.YAMLError as err:
        raise PretrainedFolderError(
            f"{hparams_path}: invalid YAML ({' '.join(str(err).split())})"
        ) from err
    pretrainer = tree.get("pretrainer") if isinstance(tree, dict) else None
    if not isinstance(pretrainer, dict) or not pretrainer.get("loadables"):
        raise PretrainedFolderError(
            f"{hparams_path}: no `pretrainer:` with `loadables` (is this a "
            "folder written by `python -m gmsep export`?)"
        )
    loadables = pretrainer["loadables"]
    if isinstance(loadables, TaggedScalar):  # `!ref <modules>`
        loadables = tree.get(loadables.value.strip("<>")) or {}
    paths = pretrainer.get("paths") or {}
    for name in loadables:
        path = paths.get(name, f"{name}.ckpt")
        if isinstance(path, TaggedScalar):
            path = path.value
        ckpt = folder / str(path).rsplit("/", maxsplit=1)[-1]
        if not ckpt.is_file():
            raise PretrainedFolderError(
                f"{ckpt}: file not found (the weights of `{name}` named in "
                f"{hparams_file})"
            )
    return folder


def check_seconds(name, value):
    """Refuses a duration that is not a finite number (``chunk_seconds``).

    Example
    -------
    >>> check_seconds("chunk_seconds", float("inf"))
    Traceback (most recent call last):
    ...
    ValueError: chunk_seconds=inf: expected a finite number of seconds
    """
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(
            f"{name}: expected a number of seconds, got {type(value).__name__} "
            f"{value!r}"
        )
    if not math.isfinite(value):
        raise ValueError(f"{name}={value}: expected a finite number of seconds")


def check_mixtures(mix):
    """Checks a batch of mixtures for the network: a finite real tensor
    [B, T] (what :func:`as_mixture_batch` makes of the user's).

    Example
    -------
    >>> check_mixtures(torch.zeros(1, 0))
    Traceback (most recent call last):
    ...
    ValueError: expected mixtures of at least one sample, got T = 0
    """
    if mix.dim() != 2:
        raise ValueError(
            f"expected mixtures of shape [batch, time] or [time], got "
            f"{tuple(mix.shape)}"
        )
    if not mix.is_floating_point():
        # int16 samples would reach the model 32768 times too loud
        raise TypeError(
            f"expected floating-point samples in [-1, 1], got {mix.dtype} "
            "(divide 16-bit samples by 32768)"
        )
    if mix.shape[-1] == 0:
        raise ValueError("expected mixtures of at least one sample, got T = 0")
    finite = torch.isfinite(mix)
    if not finite.all():
        raise ValueError(
            f"{int((~finite).sum())} of {mix.numel()} samples of the mixtures "
            "are not finite (NaN or inf)"
        )


def check_sample_rate(sample_rate):
    """Refuses a sample rate that is not a whole number of Hz from
    ``gmsep.data.audio.MIN_SAMPLE_RATE``.

    Example
    -------
    >>> check_sample_rate(44100.0)
    44100
    >>> check_sample_rate(500)
    Traceback (most recent call last):
    ...
    ValueError: sample_rate=500: expected a whole number of Hz, at least 1000
    """
    if not isinstance(sample_rate, numbers.Real) or isinstance(
        sample_rate, bool
    ):
        raise TypeError(
            f"sample_rate: expected a number of Hz, got "
            f"{type(sample_rate).__name__} {sample_rate!r}"
        )
    whole = math.isfinite(sample_rate) and sample_rate == int(sample_rate)
    if not whole or sample_rate < MIN_SAMPLE_RATE:
        raise ValueError(
            f"sample_rate={sample_rate}: expected a whole number of Hz, at "
            f"least {MIN_SAMPLE_RATE}"
        )
    return int(sample_rate)


def as_mixture_batch(mix):
    """The user's mixtures as a tensor batch [B, T], and how to give the
    results back in the user's terms.

    Arguments
    ---------
    mix : torch.Tensor or numpy.ndarray
        Float samples, shape [B, T] or [T].

    Returns
    -------
    batch : torch.Tensor
        Shape [B, T] (B = 1 for [T]); shares memory with ``mix``.
    give_back : callable
        Maps a result [B, T, ...] to the kind of ``mix``: the batch
        dimension dropped for [T], a NumPy array of ``mix``'s dtype for a
        NumPy array.

    Example
    -------
    >>> batch, give_back = as_mixture_batch(np.zeros(8000))
    >>> batch.shape, give_back(batch.unsqueeze(-1)).shape
    (torch.Size([1, 8000]), (8000, 1))
    >>> as_mixture_batch([0.0, 0.1])
    Traceback (most recent call last):
    ...
    TypeError: expected a torch.Tensor or numpy.ndarray of shape [batch, time] or [time], got builtins.list
    """
    if isinstance(mix, np.ndarray):
        if not np.issubdtype(mix.dtype, np.floating):
            raise TypeError(
                f"expected floating-point samples in [-1, 1], got {mix.dtype} "
                "(divide 16-bit samples by 32768)"
            )
        batch = torch.from_numpy(np.ascontiguousarray(mix))
    elif isinstance(mix, torch.Tensor):
        batch = mix
    else:
        kind = f"{type(mix).__module__}.{type(mix).__name__}"
        raise TypeError(
            "expected a torch.Tensor or numpy.ndarray of shape [batch, time] "
            f"or [time], got {kind}"
        )
    single = batch.dim() == 1
    batch = batch.unsqueeze(0) if single else batch
    check_mixtures(batch)

    def give_back(result):
        result = result[0] if single else result
        if isinstance(mix, np.ndarray):
            return result.detach().cpu().numpy().astype(mix.dtype, copy=False)
        return result

    return batch, give_back


def resample_to(signals, rate, new_rate, length):
    """Resamples signals [B, T, ...] along time from rate to new_rate and
    cuts (or pads) them to ``length`` samples: each resampling rounds its
    length up, so there and back gives the input's length sample for sample.

    Example
    -------
    >>> resample_to(torch.zeros(1, 441, 2), 44100, 8000, 80).shape
    torch.Size([1, 80, 2])
    """
    signals = torchaudio.functional.resample(
        signals.movedim(1, -1), rate, new_rate
    )  # B, ..., T'
    return F.pad(signals, (0, length - signals.shape[-1])).movedim(-1, 1)


class NoiseRobustSeparation(Pretrained):
    """Separates (and denoises) noisy mixtures with a pretrained gmsep model.

    Load it from a folder written by ``python -m gmsep export``::

        model = NoiseRobustSeparation.from_hparams(source="pretrained/demo")

    The folder must hold ``hyperparams.yaml`` (``sample_rate``, ``num_spks``,
    ``modules`` and a ``pretrainer``) and one ``.ckpt`` per module;
    ``enhancer`` is absent for baseline separators. ``chunk_batch`` (default
    1) is how many chunks of a long recording are separated in one batch
    (:func:`gmsep.inference.chunking.separate_in_chunks`); ``use_backend``
    chooses what runs the network. A SpeechBrain SepFormer
    folder (as SpeechBrain publishes sepformer-wham, -libri2mix, ...) loads
    as a separator without EnhanceNet: the network is built from its
    ``encoder``, ``masknet`` and ``decoder`` when it names no ``separator``.

    Example
    -------
    >>> model = NoiseRobustSeparation.from_hparams(source="not/a/folder")
    Traceback (most recent call last):
    ...
    gmsep.inference.pretrained.PretrainedFolderError: not/a/folder: no such folder...
    """

    MODULES_NEEDED = ["encoder", "masknet", "decoder"]
    HPARAMS_NEEDED = ["sample_rate", "num_spks"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        missing = [
            name for name in self.MODULES_NEEDED if name not in self.mods
        ]
        if missing:
            raise PretrainedFolderError(
                f"hyperparams.yaml: `modules:` lacks {', '.join(missing)}"
            )
        separator = getattr(self.hparams, "separator", None)
        if separator is None:  # a SpeechBrain separator folder
            separator = UnifiedSeparator(
                encoder=self.mods.encoder,
                masknet=self.mods.masknet,
                decoder=self.mods.decoder,
                enhancer=getattr(self.mods, "enhancer", None),
                num_spks=self.hparams.num_spks,
            )
        self.separator = separator.to(self.device).eval()
        # what separate_batch / enhance_batch run: the network itself unless
        # use_backend chose another (in a tuple: not one of the modules)
        self._engine = (self.separator,)
        self.backend, self.quantize = "torch", "none"
        self.folder = None
        self.chunk_batch = 1

    @classmethod
    def from_hparams(
        cls, source, hparams_file="hyperparams.yaml", overrides=None, **kwargs
    ):
        """Loads a pretrained folder, offline, reading the weights in place.

        Arguments
        ---------
        source : str or os.PathLike
            A local folder written by :func:`gmsep.inference.export.export_pretrained`.
        hparams_file : str
            The configuration file in it.
        overrides : dict, optional
            Changes to the configuration (e.g. ``{"sample_rate": 8000}``).
        **kwargs : dict
            Passed to SpeechBrain's loader, e.g. ``savedir`` (kept for
            compatibility: nothing is copied there) or ``run_opts``.

        Returns
        -------
        NoiseRobustSeparation
        """
        folder = check_pretrained_folder(source, hparams_file)
        if _names_pretrained_path(folder / hparams_file):
            # Folders of earlier exports locate their files through it.
            overrides = {"pretrained_path": str(folder), **(overrides or {})}
        # NO_LINK reads every file from the folder itself; overwrite skips
        # SpeechBrain's reuse of whatever a savedir already holds.
        kwargs["local_strategy"] = LocalStrategy.NO_LINK
        kwargs["fetch_config"] = FetchConfig(
            overwrite=True, allow_network=False
        )
        try:
            model = super().from_hparams(
                source=str(folder),
                hparams_file=hparams_file,
                overrides=overrides,
                **kwargs,
            )
            model.folder = folder
            return model
        except PretrainedFolderError:
            raise
        except (ImportError, AttributeError, TypeError, KeyError) as err:
            # hyperparams.yaml names a class or argument that does not exist
            raise PretrainedFolderError(
                f"{folder / hparams_file}: cannot build the model it "
                f"describes ({type(err).__name__}: {err})"
            ) from err

    @property
    def sample_rate(self):
        """The sample rate (Hz) the model works at."""
        return self.hparams.sample_rate

    @property
    def num_spks(self):
        """The number of speakers S."""
        return self.hparams.num_spks

    @property
    def has_enhancer(self):
        """Whether the model has an SE branch (the EnhanceNet)."""
        return self.separator.enhancer is not None

    def _min_length(self):
        """The shortest input the encoder accepts: its kernel size."""
        encoder_conv = getattr(self.separator.encoder, "conv1d", None)
        return encoder_conv.kernel_size[0] if encoder_conv is not None else 1

    def _run(self, forward, mix):
        """Runs forward on mix [B, T] (checked), zero-padding inputs too
        short for the encoder, and crops the result back to T samples."""
        length = mix.shape[-1]
        mix = mix.to(self.device, torch.float32)
        missing = self._min_length() - length
        if missing > 0:
            mix = F.pad(mix, (0, missing))
        with torch.no_grad(), self.inference_ctx:
            return forward(mix)[:, :length]

    def _as_given(self, forward, mix, sample_rate):
        """Runs forward (a tensor [B, T] at the model's rate -> [B, T, ...])
        on the user's mix ([B, T] or [T], tensor or NumPy, at sample_rate)
        and gives the result back in the same terms: same kind, same batch
        dimension, at sample_rate, T samples."""
        batch, give_back = as_mixture_batch(mix)
        if sample_rate is None or sample_rate == self.sample_rate:
            return give_back(forward(batch))
        rate = check_sample_rate(sample_rate)
        length = batch.shape[-1]
        batch = torchaudio.functional.resample(
            batch.float(), rate, self.sample_rate
        )
        return give_back(
            resample_to(forward(batch), self.sample_rate, rate, length)
        )

    def separate_batch(self, mix, sample_rate=None):
        """Separates a batch of mixtures.

        Arguments
        ---------
        mix : torch.Tensor or numpy.ndarray
            Noisy mixtures, float samples, shape B, T (or T: one mixture).
        sample_rate : int, optional
            Their sample rate, when it is not the model's: they are
            resampled to it and the sources back, T samples each.

        Returns
        -------
        torch.Tensor or numpy.ndarray
            The separated sources, shape B, T, S (T, S for one mixture): a
            tensor on the model's device, or a NumPy array of ``mix``'s
            dtype for a NumPy array.
        """
        return self._as_given(
            lambda batch: self._run(self.engine.separate, batch),
            mix,
            sample_rate,
        )

    def enhance_batch(self, mix, sample_rate=None):
        """Denoises a batch of mixtures with the SE branch (both speakers kept).

        Arguments are those of :meth:`separate_batch`.

        Returns
        -------
        torch.Tensor or numpy.ndarray
            The enhanced mixtures Decoder(E), shape B, T (T for one
            mixture), of the kind of ``mix``.
        """
        if not self.has_enhancer:
            raise ValueError(NO_ENHANCER)
        return self._as_given(
            lambda batch: self._run(self.engine.enhance, batch),
            mix,
            sample_rate,
        )

    def use_backend(self, backend="torch", quantize="none", onnx_file=None):
        """Chooses what runs the network from now on.

        Arguments
        ---------
        backend : str
            ``torch`` (the modules, on the model's device) or
            ``onnxruntime`` (the folder's ``separator.onnx``, written by
            ``gmsep export --onnx``, on the CPU).
        quantize : str
            ``none`` or ``int8`` (:mod:`gmsep.inference.quantize`, CPU
            only): with torch, the network's linear layers quantised now;
            with onnxruntime, the folder's ``separator-int8.onnx``.
        onnx_file : str or os.PathLike, optional
            The ONNX file; default ``separator.onnx`` (or
            ``separator-int8.onnx``) of the loaded folder.

        Raises
        ------
        PretrainedFolderError
            When the ONNX file is missing.
        ValueError
            For an unknown backend, or onnxruntime on another device than
            the CPU.
        """
        if backend not in BACKENDS:
            raise ValueError(
                f"backend={backend!r}: expected one of {', '.join(BACKENDS)}"
            )
        if quantize not in QUANTIZE:
            raise ValueError(
                f"quantize={quantize!r}: expected one of {', '.join(QUANTIZE)}"
            )
        if str(self.device) != "cpu" and (
            backend != "torch" or quantize != "none"
        ):
            raise ValueError(
                f"backend={backend}, quantize={quantize} runs on the CPU, the "
                f"model is on {self.device}"
            )
        self.quantize = quantize
        if backend == "torch":
            engine = self.separator
            if quantize == "int8":
                engine = quantize_torch(self.separator)
            self._engine, self.backend = (engine,), backend
            return
        if onnx_file is None:
            name = INT8_ONNX_FILE if quantize == "int8" else ONNX_FILE
            onnx_file = Path(self.folder or ".") / name
        if not Path(onnx_file).is_file():
            raise PretrainedFolderError(
                f"{onnx_file}: file not found (write it with `gmsep export "
                "<experiment> --out <folder> --onnx`)"
            )
        self._engine, self.backend = (OnnxSeparator(onnx_file),), backend

    @property
    def engine(self):
        """What runs the network: the separator module (torch) or an
        :class:`gmsep.inference.onnx_backend.OnnxSeparator`."""
        return self._engine[0]

    def _read(self, path, min_seconds=MIN_SECONDS, loudness=False):
        """(mix [1, T] at the model's rate, file rate, file frames, the
        file's integrated loudness in LUFS if asked, else None)."""
        signal, file_rate = read_audio(path, min_seconds)
        file_length = len(signal)
        # the recording as the file holds it, all of its band
        lufs = integrated_loudness(signal, file_rate) if loudness else None
        if file_rate < self.sample_rate:
            logger.warning(
                "%s: %d Hz, below the model's %d Hz: the band from %d to %d "
                "Hz, which the model was trained on, is empty in this file",
                path,
                file_rate,
                self.sample_rate,
                file_rate // 2,
                self.sample_rate // 2,
            )
        if file_rate != self.sample_rate:
            signal = torchaudio.functional.resample(
                signal, file_rate, self.sample_rate
            )
        return signal.unsqueeze(0), file_rate, file_length, lufs

    def load_mixture(self, path, min_seconds=MIN_SECONDS):
        """Reads a mixture file, downmixed to mono and resampled to the model.

        Arguments
        ---------
        path : str or os.PathLike
            Any format soundfile reads, at any sample rate.
        min_seconds : float
            The shortest file accepted
            (``gmsep.data.audio.MIN_SECONDS``; 0: any).

        Returns
        -------
        mix : torch.Tensor
            Shape 1, T at ``sample_rate``, on the CPU.
        file_rate : int
            The file's sample rate.
        """
        mix, file_rate, _, _ = self._read(path, min_seconds)
        return mix, file_rate

    def separate_long(
        self,
        mix,
        chunk_seconds=None,
        overlap_seconds=None,
        progress=None,
        sample_rate=None,
    ):
        """Separates mixtures of any length, chunk by chunk when long.

        Mixtures longer than ``chunk_seconds`` are separated in overlapping
        chunks (:mod:`gmsep.inference.chunking`), so memory stays bounded; shorter
        ones in one pass, exactly as ``separate_batch``.

        Arguments
        ---------
        mix : torch.Tensor or numpy.ndarray
            Noisy mixtures, shape B, T (or T), as for :meth:`separate_batch`.
        chunk_seconds : float, optional
            Chunk length; default ``gmsep.inference.chunking.DEFAULT_CHUNK_SECONDS``.
        overlap_seconds : float, optional
            Overlap of consecutive chunks; default
            ``gmsep.inference.chunking.DEFAULT_OVERLAP_SECONDS``, at most a quarter of
            the chunk.
        progress : callable, optional
            Called with 1 after each chunk (e.g. a tqdm bar's ``update``).
        sample_rate : int, optional
            As for :meth:`separate_batch`.

        Returns
        -------
        torch.Tensor or numpy.ndarray
            The separated sources, shape B, T, S (T, S for one mixture), on
            the CPU, of the kind of ``mix``.
        """
        lengths = self.chunk_lengths(chunk_seconds, overlap_seconds)
        return self._as_given(
            lambda batch: separate_in_chunks(
                lambda chunk: self._run(self.engine.separate, chunk).cpu(),
                batch,
                *lengths,
                progress,
                self.chunk_batch,
            ),
            mix,
            sample_rate,
        )

    def enhance_long(
        self,
        mix,
        chunk_seconds=None,
        overlap_seconds=None,
        progress=None,
        sample_rate=None,
    ):
        """Denoises mixtures of any length (SE branch), chunk by chunk when long.

        Arguments are those of :meth:`separate_long`.

        Returns
        -------
        torch.Tensor or numpy.ndarray
            The enhanced mixtures, shape B, T (T for one mixture), on the
            CPU, of the kind of ``mix``.
        """
        if not self.has_enhancer:
            raise ValueError(NO_ENHANCER)
        lengths = self.chunk_lengths(chunk_seconds, overlap_seconds)
        return self._as_given(
            lambda batch: separate_in_chunks(
                lambda chunk: (
                    self._run(self.engine.enhance, chunk).unsqueeze(-1).cpu()
                ),  # B, t, 1
                batch,
                *lengths,
                progress,
                self.chunk_batch,
            )[..., 0],
            mix,
            sample_rate,
        )

    def separate_file(
        self,
        path,
        savedir=None,
        chunk_seconds=None,
        overlap_seconds=None,
        resample_back=False,
        progress=None,
        normalize="peak",
        subtype="PCM_16",
    ):
        """Separates an audio file of any length and sample rate.

        Arguments
        ---------
        path : str or os.PathLike
            The noisy mixture (multi-channel files are averaged to mono).
        savedir : str or os.PathLike, optional
            If given, also writes ``<stem>_s1.wav`` ... there (at the
            returned signals' sample rate, in the ``subtype`` format).
        chunk_seconds : float, optional
            See :meth:`separate_long`.
        overlap_seconds : float, optional
            See :meth:`separate_long`.
        resample_back : bool
            Return (and write) the sources at the file's sample rate instead
            of the model's.
        progress : callable, optional
            Called with 1 after each chunk.
        normalize : str
            The level of each returned and written source
            (:func:`gmsep.data.audio.normalize_outputs`): ``peak`` (as
            SpeechBrain's ``separate_file``), ``loudness`` (the file's
            integrated loudness) or ``none`` (the network's scale).
        subtype : str
            The files' sample format: ``PCM_16``, ``PCM_24`` or ``FLOAT``.
            Nothing is clipped: in a fixed-point file, sources beyond full
            scale are scaled down together, with a warning.

        Returns
        -------
        torch.Tensor
            The separated sources, shape 1, T, S, on the CPU.
        """
        check_output_format(normalize, subtype)
        if savedir is not None:  # before any work
            check_output_folder(savedir, "savedir")
        mix, file_rate, file_length, loudness = self._read(
            path, loudness=normalize == "loudness"
        )  # 1, T
        est_sources = self.separate_long(
            mix, chunk_seconds, overlap_seconds, progress
        )
        suffixes = [f"_s{i + 1}" for i in range(self.num_spks)]
        return self._save(
            est_sources,
            path,
            savedir,
            suffixes,
            (file_rate, file_length),
            resample_back,
            (normalize, subtype, loudness),
        )

    def enhance_file(
        self,
        path,
        savedir=None,
        chunk_seconds=None,
        overlap_seconds=None,
        resample_back=False,
        progress=None,
        normalize="peak",
        subtype="PCM_16",
    ):
        """Denoises an audio file of any length and sample rate (SE branch).

        Arguments are those of :meth:`separate_file`; the file written in
        ``savedir`` is ``<stem>_enhanced.wav``.

        Returns
        -------
        torch.Tensor
            The enhanced mixture, shape 1, T, on the CPU.
        """
        check_output_format(normalize, subtype)
        if savedir is not None:  # before any work
            check_output_folder(savedir, "savedir")
        mix, file_rate, file_length, loudness = self._read(
            path, loudness=normalize == "loudness"
        )  # 1, T
        enhanced = self.enhance_long(
            mix, chunk_seconds, overlap_seconds, progress
        )
        enhanced = self._save(
            enhanced.unsqueeze(-1),
            path,
            savedir,
            ["_enhanced"],
            (file_rate, file_length),
            resample_back,
            (normalize, subtype, loudness),
        )  # 1, T, 1
        return enhanced[..., 0]

    def _save(self, outputs, path, savedir, suffixes, file, resample_back, fmt):
        """Resamples outputs [1, T, C] back to the file's (rate, frames) if
        asked, sets their levels and writes ``<stem><suffix>.wav`` per
        channel into savedir if given, all or none (see
        :func:`gmsep.data.audio.write_sources`); fmt = (normalize, subtype,
        the file's loudness for ``normalize="loudness"``)."""
        normalize, subtype, loudness = fmt
        rate = self.sample_rate
        file_rate, file_length = file
        if resample_back and file_rate != rate:
            outputs = resample_to(outputs, rate, file_rate, file_length)
            rate = file_rate
        outputs = normalize_outputs(outputs[0], normalize, rate, loudness)[None]
        if savedir is not None:
            Path(savedir).mkdir(parents=True, exist_ok=True)
            stem = Path(path).stem
            write_sources(
                [Path(savedir) / f"{stem}{suffix}.wav" for suffix in suffixes],
                outputs[0],
                rate,
                subtype,
            )
        return outputs

    def chunk_lengths(self, chunk_seconds=None, overlap_seconds=None):
        """Chunk and overlap lengths in samples at the model's sample rate.

        Arguments
        ---------
        chunk_seconds : float, optional
            Default ``gmsep.inference.chunking.DEFAULT_CHUNK_SECONDS``.
        overlap_seconds : float, optional
            Default ``gmsep.inference.chunking.DEFAULT_OVERLAP_SECONDS``, at most a
            quarter of the chunk.

        Returns
        -------
        chunk_length, overlap_length : int

        Raises
        ------
        ValueError
            For a chunk shorter than the encoder's kernel, or an overlap that
            is not positive and shorter than the chunk.
        """
        chunk_seconds = (
            DEFAULT_CHUNK_SECONDS if chunk_seconds is None else chunk_seconds
        )
        check_seconds("chunk_seconds", chunk_seconds)
        if overlap_seconds is not None:
            check_seconds("overlap_seconds", overlap_seconds)
        if overlap_seconds is None:
            overlap_seconds = min(DEFAULT_OVERLAP_SECONDS, chunk_seconds / 4)
        chunk_length = round(chunk_seconds * self.sample_rate)
        overlap_length = round(overlap_seconds * self.sample_rate)
        if chunk_length < self._min_length():
            raise ValueError(
                f"chunk_seconds={chunk_seconds}: a chunk must hold at least "
                f"{self._min_length()} samples at {self.sample_rate} Hz"
            )
        if not 0 < overlap_length < chunk_length:
            raise ValueError(
                f"overlap_seconds={overlap_seconds}: must be positive and shorter "
                f"than chunk_seconds={chunk_seconds}"
            )
        return chunk_length, overlap_length
