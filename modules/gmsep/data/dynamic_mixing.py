"""Dynamic mixing: new training mixtures every epoch from LibriMix's sources.

Each item draws S distinct speakers of the training CSV, one utterance of
each and one noise file, crops them to a common length, sets their levels
and sums them. Two level rules (``dynamic_mixing_levels``):

* ``librimix`` (default): as LibriMix draws its mixtures, each source at a
  loudness in -33..-25 LUFS and the noise at -38..-30 LUFS, with LibriMix's
  clipping rule (:func:`gmsep.data.mixing.mix_sources_lufs`), so that the
  dynamic mixtures have the statistics of the fixed validation and test
  sets;
* ``wham``: each source at an RMS level in -33..-25 dB and the noise at a
  WHAM!-like SNR of -6..3 dB below the loudest source
  (:func:`gmsep.data.mixing.mix_sources`, shared with the demo corpus).
 The sources come from the ``s1`` ... ``sS``
columns of a LibriMix-layout CSV, whose mixture IDs name their utterances
(``<speaker>-<chapter>-<utt>_...``, one part per source, see
:mod:`recipes.prepare_librimix`); the noises from its ``noise`` column.

Items are deterministic functions of (seed, epoch, index): a run can be
reproduced and resumed, and every epoch sees new mixtures provided the
training loop calls :meth:`DynamicMixingDataset.set_epoch` at its start.

Authors
 * gmsep contributors 2026
"""

import re

import numpy as np
from speechbrain.dataio.dataio import load_data_csv
from speechbrain.dataio.dataset import DynamicItemDataset

from gmsep.data.audio import DataError, check_audio_file, read_mono
from gmsep.data.columns import NOISE, sig_keys, source_columns, wav_column
from gmsep.data.mixing import MAX_AMP, mix_sources, mix_sources_lufs

# A LibriSpeech utterance ID: <speaker>-<chapter>-<utterance>
UTTERANCE_ID = re.compile(r"(\d+)-\d+-\d+")
# LibriMix draws each source's loudness uniformly in this range (dB)
SPEECH_LEVELS = (-33.0, -25.0)
# LibriMix draws the noise's loudness in this range (LUFS), 5 LU below
NOISE_LEVELS = (-38.0, -30.0)
# WHAM! draws the SNR of the louder source over the noise in this range (dB)
SNR_RANGE = (-6.0, 3.0)
# The level rules of dynamic mixing: LibriMix's loudness, WHAM!-like SNR
LEVEL_RULES = ("librimix", "wham")


def librimix_pools(csv_path, num_spks):
    """Collects the source utterances per speaker and the noises of a CSV.

    Source i of the mixture ``a_b`` is utterance ``a`` (column ``s1_wav``) or
    ``b`` (``s2_wav``), spoken by the first field of that part of the ID. An
    utterance found in several mixtures is kept once.

    Arguments
    ---------
    csv_path : str
        A prepared LibriMix CSV (``ID``, ``s1_wav`` ... ``sS_wav``,
        ``noise_wav``).
    num_spks : int
        Number of sources S of each mixture.

    Returns
    -------
    speakers : dict
        Speaker ID to the list of its utterance files.
    noises : list of str
        The distinct noise files.
    num_rows : int
        Number of mixtures in the CSV.

    Raises
    ------
    DataError
        When the CSV is missing, lacks a column, has an ID not in LibriMix
        naming with S parts, or has fewer than S speakers.
    """
    try:
        data = load_data_csv(csv_path)
    except FileNotFoundError as err:
        raise DataError(
            f"{csv_path}: CSV not found (run the data preparation)"
        ) from err
    sources = source_columns(num_spks)
    noise_column = wav_column(NOISE)
    utterances = {}  # utterance ID -> (speaker, file)
    noises = {}
    for mixture_id, row in data.items():
        missing = [
            column for column in (*sources, noise_column) if column not in row
        ]
        if missing:
            raise DataError(
                f"{csv_path}: missing column(s) {', '.join(missing)}"
            )
        parts = mixture_id.split("_")
        matches = [UTTERANCE_ID.fullmatch(part) for part in parts]
        if len(parts) != num_spks or not all(matches):
            raise DataError(
                f"{csv_path}: ID {mixture_id!r} does not follow the LibriMix "
                f"naming of {num_spks} utterances <speaker>-<chapter>-<utt> "
                "joined by '_', which dynamic mixing needs to find the speakers"
            )
        for part, match, column in zip(parts, matches, sources, strict=True):
            utterances.setdefault(part, (match.group(1), row[column]))
        noises.setdefault(row[noise_column], None)

    speakers = {}
    for speaker, path in utterances.values():
        speakers.setdefault(speaker, []).append(path)
    if len(speakers) < num_spks:
        raise DataError(
            f"{csv_path}: {len(speakers)} speaker(s), dynamic mixing of "
            f"{num_spks} sources needs at least {num_spks}"
        )
    return speakers, list(noises), len(data)


class DynamicMixer:
    """Builds the mixture of an item from randomly drawn sources and noise.

    Arguments
    ---------
    speakers : dict
        Speaker ID to the list of its utterance files (at least S speakers).
    noises : list of str
        Noise files.
    num_spks : int
        Number of sources S per mixture, from distinct speakers.
    sample_rate : int
        Sample rate in Hz of every file.
    segment_len : int, optional
        Longest item in samples (a random crop); None or 0: the shortest
        drawn file's length.
    seed : int
        With the epoch and the item index, determines the item.
    levels : str
        The level rule, one of ``LEVEL_RULES``: "librimix" (loudness in
        LUFS, sources in ``speech_levels``, noise in ``noise_levels``) or
        "wham" (RMS levels in ``speech_levels``, noise at an SNR in
        ``snr_range``).
    speech_levels : tuple of float
        Range (LUFS, or dB RMS with "wham") of each source's level.
    noise_levels : tuple of float
        Range (LUFS) of the noise's loudness ("librimix").
    snr_range : tuple of float
        Range (dB) of the louder source's level over the noise ("wham").

    Example
    -------
    >>> import numpy as np, soundfile as sf, torch
    >>> tmp_path = getfixture("tmp_path")
    >>> rng = np.random.default_rng(0)
    >>> for name in ("a", "b", "n"):
    ...     samples = rng.integers(-3000, 3000, 800).astype("int16")
    ...     sf.write(tmp_path / f"{name}.wav", samples, 8000)
    >>> mixer = DynamicMixer(
    ...     {"1": [str(tmp_path / "a.wav")], "2": [str(tmp_path / "b.wav")]},
    ...     [str(tmp_path / "n.wav")], num_spks=2, sample_rate=8000,
    ... )
    >>> mix, s1, s2, noise, clean = mixer(index=0)
    >>> mix.shape
    torch.Size([800])
    >>> torch.equal(mix, clean + noise)
    True
    """

    def __init__(
        self,
        speakers,
        noises,
        num_spks,
        sample_rate,
        segment_len=None,
        seed=1234,
        levels="librimix",
        speech_levels=SPEECH_LEVELS,
        noise_levels=NOISE_LEVELS,
        snr_range=SNR_RANGE,
    ):
        if levels not in LEVEL_RULES:
            raise ValueError(
                f"dynamic_mixing_levels: {levels!r} is not one of {LEVEL_RULES}"
            )
        # Sorted: the draws must not depend on the CSV's row order
        self.speakers = [speakers[speaker] for speaker in sorted(speakers)]
        self.noises = noises
        self.num_spks = num_spks
        self.sample_rate = sample_rate
        self.segment_len = segment_len
        self.seed = seed
        self.levels = levels
        self.speech_levels = speech_levels
        self.noise_levels = noise_levels
        self.snr_range = snr_range
        self.epoch = 0
        self.keys = sig_keys(num_spks)

    def _read_segments(self, paths, rng):
        """Reads one random segment of common length from each file."""
        frames = [
            check_audio_file(path, self.sample_rate).frames for path in paths
        ]
        length = min(frames)
        if self.segment_len:
            length = min(length, self.segment_len)
        signals = []
        for path, num_frames in zip(paths, frames, strict=True):
            start = int(rng.integers(num_frames - length + 1))
            signals.append(
                read_mono(path, self.sample_rate, start, start + length)
            )
        return signals

    def __call__(self, index):
        """Builds item `index` of the current epoch.

        Arguments
        ---------
        index : int
            The item's index in the epoch.

        Returns
        -------
        tuple of torch.Tensor
            mix, s1 ... sS, noise, clean: float32, [T] each.
        """
        rng = np.random.default_rng([self.seed, self.epoch, index])
        drawn = rng.choice(len(self.speakers), self.num_spks, replace=False)
        paths = [
            self.speakers[speaker][rng.integers(len(self.speakers[speaker]))]
            for speaker in drawn
        ]
        paths.append(self.noises[rng.integers(len(self.noises))])
        *sources, noise = self._read_segments(paths, rng)

        levels = rng.uniform(*self.speech_levels, size=self.num_spks)
        if self.levels == "librimix":
            noise_level = rng.uniform(*self.noise_levels)
            sources, noise = mix_sources_lufs(
                sources, noise, levels, noise_level, self.sample_rate, MAX_AMP
            )  # S, T and T
        else:
            snr = rng.uniform(*self.snr_range)
            sources, noise = mix_sources(
                sources, noise, levels, snr, max_amp=MAX_AMP
            )  # S, T and T
        clean = sources.sum(0)  # T
        return (clean + noise, *sources.unbind(0), noise, clean)


class DynamicMixingDataset(DynamicItemDataset):
    """A DynamicItemDataset of dynamically mixed training items.

    Batches as the static datasets do (PaddedBatch, the same keys), so
    Brain.fit takes it unchanged. Call :meth:`set_epoch` at the start of each
    epoch (before the loader is iterated) for new mixtures.

    Arguments
    ---------
    mixer : DynamicMixer
        Builds each item.
    num_items : int
        Items per epoch.

    Example
    -------
    >>> import numpy as np, soundfile as sf, torch
    >>> path = str(getfixture("tmp_path") / "utt.wav")
    >>> sf.write(path, np.random.default_rng(0).normal(0, 0.1, 800), 8000)
    >>> mixer = DynamicMixer({"1": [path], "2": [path]}, [path], 2, 8000)
    >>> dataset = DynamicMixingDataset(mixer, num_items=3)
    >>> len(dataset), list(dataset[0])
    (3, ['id', 'mix_sig', 's1_sig', 's2_sig', 'noise_sig', 'clean_sig'])
    >>> dataset.set_epoch(2)
    >>> torch.equal(dataset[0]["mix_sig"], mixer(0)[0])
    True
    """

    def __init__(self, mixer, num_items):
        data = {
            f"dynmix_{index:07d}": {"index": index}
            for index in range(num_items)
        }
        super().__init__(
            data,
            dynamic_items=[
                {"func": mixer, "takes": ["index"], "provides": mixer.keys}
            ],
            output_keys=["id", *mixer.keys],
        )
        self.mixer = mixer

    def set_epoch(self, epoch):
        """Selects the mixtures of an epoch.

        Arguments
        ---------
        epoch : int
            The epoch number.
        """
        self.mixer.epoch = epoch


def dynamic_mixing_dataset(
    csv_path,
    num_spks,
    sample_rate,
    segment_len=None,
    seed=1234,
    levels="librimix",
):
    """Creates the dynamic-mixing training set of a LibriMix CSV.

    Arguments
    ---------
    csv_path : str
        The prepared LibriMix training CSV.
    num_spks : int
        Number of sources S per mixture.
    sample_rate : int
        Sample rate in Hz.
    segment_len : int, optional
        Longest item in samples (a random crop); None or 0 for no limit.
    seed : int
        Seed of the mixtures.
    levels : str
        The level rule, "librimix" or "wham" (see :class:`DynamicMixer`).

    Returns
    -------
    DynamicMixingDataset
        As many items per epoch as the CSV has rows.

    Raises
    ------
    DataError
        See :func:`librimix_pools`.
    """
    speakers, noises, num_rows = librimix_pools(csv_path, num_spks)
    mixer = DynamicMixer(
        speakers,
        noises,
        num_spks,
        sample_rate,
        segment_len=segment_len,
        seed=seed,
        levels=levels,
    )
    return DynamicMixingDataset(mixer, num_rows)
