"""Data pipelines: prepared CSVs to SpeechBrain datasets of separation items.

Every item holds the network input ``mix_sig``, the targets ``s1_sig`` ...
``sS_sig``, the noise ``noise_sig`` and the SE target ``clean_sig`` (the clean
mixture), all float32 1-D tensors at the configured sample rate. Audio is read
through :func:`gmsep.data.audio.read_mono`, so a bad file is named in the
error instead of surfacing as a shape error inside the model.

Training items are full utterances (the paper) or random crops of
``training_signal_len`` samples; with ``dynamic_mixing`` they are new
mixtures every epoch (:mod:`gmsep.data.dynamic_mixing`). Shuffling is the
Brain's: ``dataloader_opts: {shuffle: True}``.

Authors
 * gmsep contributors 2026
"""

import torch
from speechbrain.dataio.dataio import load_data_csv
from speechbrain.dataio.dataset import DynamicItemDataset

from gmsep.data.audio import DataError, check_audio_file, read_mono
from gmsep.data.columns import (
    ID,
    sig_keys,
    signal_names,  # noqa: F401 (re-exported)
    wav_columns,
)
from gmsep.data.dynamic_mixing import dynamic_mixing_dataset

SORTINGS = ("random", "ascending", "descending")


def _crop_bounds(paths, sample_rate, segment_len):
    """Picks one random segment [start, stop) shared by all signals of an item.

    Only the file headers are read. The segment lies within the shortest
    file; items no longer than segment_len are kept whole.

    Arguments
    ---------
    paths : list of str
        The audio files of one item.
    sample_rate : int
        Expected sample rate in Hz.
    segment_len : int or None
        Crop length in samples; None or 0 for the full length.

    Returns
    -------
    start : int
    stop : int or None
        None (with start 0) means the whole files.
    """
    if not segment_len:
        return 0, None
    length = min(check_audio_file(path, sample_rate).frames for path in paths)
    if length <= segment_len:
        return 0, None
    # torch's RNG: DataLoader workers get distinct, seeded streams
    start = int(torch.randint(length - segment_len + 1, (1,)))
    return start, start + segment_len


def add_signal_pipeline(dataset, num_spks, sample_rate, segment_len=None):
    """Adds the dynamic items that read every signal of an item.

    Arguments
    ---------
    dataset : DynamicItemDataset
        A dataset with the columns ``mix_wav``, ``s1_wav`` ... ``noise_wav``,
        ``clean_wav``.
    num_spks : int
        Number of speakers S.
    sample_rate : int
        Expected sample rate in Hz (no resampling is done).
    segment_len : int, optional
        Length in samples of a random crop, the same segment in all signals of
        an item; None or 0 for full-length signals.
    """

    def read_signals(*paths):
        """Reads the item's signals, cropped to one common segment."""
        start, stop = _crop_bounds(paths, sample_rate, segment_len)
        return tuple(
            read_mono(path, sample_rate, start, stop) for path in paths
        )

    dataset.add_dynamic_item(
        read_signals,
        takes=wav_columns(num_spks),
        provides=sig_keys(num_spks),
    )
    dataset.set_output_keys(["id", *sig_keys(num_spks)])


def csv_dataset(csv_path, num_spks):
    """Loads a prepared CSV as a DynamicItemDataset, checking its columns.

    Arguments
    ---------
    csv_path : str
        A CSV with the columns ``ID, duration, mix_wav, s1_wav`` ... ``sS_wav,
        noise_wav, clean_wav`` and absolute paths.
    num_spks : int
        Number of speakers S the CSV must provide sources for.

    Returns
    -------
    DynamicItemDataset
        With only the static CSV columns; see :func:`add_signal_pipeline`.

    Raises
    ------
    DataError
        When the CSV is missing, empty or lacks a column.
    """
    try:
        data = load_data_csv(csv_path)
    except FileNotFoundError as err:
        raise DataError(
            f"{csv_path}: CSV not found (run the data preparation)"
        ) from err
    if not data:
        raise DataError(f"{csv_path}: the CSV lists no item")
    columns = next(iter(data.values()))
    missing = [name for name in wav_columns(num_spks) if name not in columns]
    if missing:
        raise DataError(
            f"{csv_path}: missing column(s) {', '.join(missing)} for "
            f"num_spks={num_spks} (found: {', '.join([ID, *columns])})"
        )
    return DynamicItemDataset(data)


def _sorted_train(dataset, hparams):
    """Sorts the training set by duration when ``sorting`` asks for it.

    As in SpeechBrain's recipes, a sorted order turns the loader's shuffling
    off (``hparams["dataloader_opts"]["shuffle"]``); "random" leaves the
    dataset as it is, for the loader to shuffle.

    Arguments
    ---------
    dataset : DynamicItemDataset
        The training set.
    hparams : dict
        Reads ``sorting`` (default "random"), may set ``dataloader_opts``.

    Returns
    -------
    DynamicItemDataset
    """
    sorting = hparams.get("sorting", "random")
    if sorting not in SORTINGS:
        raise ValueError(
            f"sorting: {sorting!r}, expected one of {', '.join(SORTINGS)}"
        )
    if sorting == "random":
        return dataset
    if "dataloader_opts" in hparams:
        hparams["dataloader_opts"]["shuffle"] = False
    return dataset.filtered_sorted(
        sort_key="duration", reverse=sorting == "descending"
    )


def dataio_prep(hparams):
    """Creates the train, valid and test datasets of a separation recipe.

    Arguments
    ---------
    hparams : dict
        Reads ``train_data``, ``valid_data``, ``test_data`` (prepared CSVs),
        ``num_spks``, ``sample_rate`` and, optionally, ``training_signal_len``
        (crop length in samples for training, None or 0 for full length;
        default None), ``dynamic_mixing`` (default False), ``sorting``
        ("random", "ascending" or "descending"; default "random": shuffled by
        the loader), ``seed`` (dynamic mixing; default 1234) and
        ``dynamic_mixing_levels`` ("librimix", the default, or "wham").

    Returns
    -------
    dict
        ``train``, ``valid``, ``test``: DynamicItemDatasets whose items have
        the keys ``id``, ``mix_sig``, ``s1_sig`` ... ``sS_sig``,
        ``noise_sig``, ``clean_sig``. With dynamic mixing, ``train`` is a
        :class:`gmsep.data.dynamic_mixing.DynamicMixingDataset`: call its
        ``set_epoch`` at the start of every training epoch.

    Raises
    ------
    DataError
        When a CSV is missing, empty or lacks a column (dynamic mixing: also
        when its IDs do not follow the LibriMix naming).
    """
    num_spks = hparams["num_spks"]
    sample_rate = hparams["sample_rate"]
    segment_len = hparams.get("training_signal_len")
    datasets = {}
    for split in ("valid", "test"):
        datasets[split] = csv_dataset(hparams[f"{split}_data"], num_spks)
        add_signal_pipeline(datasets[split], num_spks, sample_rate)

    if hparams.get("dynamic_mixing", False):
        if hparams.get("sorting", "random") != "random":
            raise ValueError(
                "sorting: dynamic mixtures have no fixed duration, use "
                "sorting: random with dynamic_mixing: True"
            )
        datasets["train"] = dynamic_mixing_dataset(
            hparams["train_data"],
            num_spks=num_spks,
            sample_rate=sample_rate,
            segment_len=segment_len,
            seed=hparams.get("seed", 1234),
            levels=hparams.get("dynamic_mixing_levels", "librimix"),
        )
    else:
        train = csv_dataset(hparams["train_data"], num_spks)
        add_signal_pipeline(train, num_spks, sample_rate, segment_len)
        datasets["train"] = _sorted_train(train, hparams)
    return {split: datasets[split] for split in ("train", "valid", "test")}
