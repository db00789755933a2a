"""The column contract of the prepared CSVs, and the LibriMix folder layout.

Every CSV the preparations write and the data pipelines read has the columns
``ID, duration, mix_wav, s1_wav ... sS_wav, noise_wav, clean_wav``: the
network input (the noisy mixture y), the S separation targets, the noise n
and the SE target (the clean mixture x = s1 + ... + sS). Each item read from
a row holds the same signals under ``<name>_sig``. The names are written
here once, so that a writer and its readers cannot drift apart.

Importable without SpeechBrain or torch.

Example
-------
>>> signal_names(2)
['mix', 's1', 's2', 'noise', 'clean']
>>> wav_columns(2)
['mix_wav', 's1_wav', 's2_wav', 'noise_wav', 'clean_wav']
>>> librimix_columns(2, "noisy")["mix_wav"]
'mix_both'

Authors
 * gmsep contributors 2026
"""

import re

# The network input: the noisy mixture y = x + n
MIX = "mix"
# The noise n, and the SE target, the clean mixture x = s1 + ... + sS
NOISE = "noise"
CLEAN = "clean"
# Audio path columns end with this, signals of an item with SIG_SUFFIX
WAV_SUFFIX = "_wav"
SIG_SUFFIX = "_sig"
# The columns every prepared CSV has besides the audio ones
ID = "ID"
DURATION = "duration"

_SOURCE_COLUMN = re.compile(r"s([1-9]\d*)_wav")


def source_names(num_spks):
    """Names of the S separation targets, ``s1`` ... ``sS``.

    Arguments
    ---------
    num_spks : int
        Number of speakers S.

    Returns
    -------
    list of str

    Example
    -------
    >>> source_names(3)
    ['s1', 's2', 's3']
    """
    return [f"s{i}" for i in range(1, num_spks + 1)]


def signal_names(num_spks):
    """Names of the signals of one item, in the CSV's column order.

    Arguments
    ---------
    num_spks : int
        Number of speakers S.

    Returns
    -------
    list of str
        ``mix``, ``s1`` ... ``sS``, ``noise``, ``clean``.

    Example
    -------
    >>> signal_names(2)
    ['mix', 's1', 's2', 'noise', 'clean']
    """
    return [MIX, *source_names(num_spks), NOISE, CLEAN]


def wav_column(name):
    """The CSV column holding the path of signal ``name``.

    Example
    -------
    >>> wav_column("s1")
    's1_wav'
    """
    return name + WAV_SUFFIX


def sig_key(name):
    """The key of signal ``name`` in an item of a dataset.

    Example
    -------
    >>> sig_key("clean")
    'clean_sig'
    """
    return name + SIG_SUFFIX


def wav_columns(num_spks):
    """The audio path columns of a prepared CSV, in order.

    Example
    -------
    >>> wav_columns(1)
    ['mix_wav', 's1_wav', 'noise_wav', 'clean_wav']
    """
    return [wav_column(name) for name in signal_names(num_spks)]


def source_columns(num_spks):
    """The columns of the separation targets, ``s1_wav`` ... ``sS_wav``.

    Example
    -------
    >>> source_columns(2)
    ['s1_wav', 's2_wav']
    """
    return [wav_column(name) for name in source_names(num_spks)]


def sig_keys(num_spks):
    """The signal keys of an item: ``mix_sig``, ``s1_sig`` ... ``clean_sig``.

    Example
    -------
    >>> sig_keys(1)
    ['mix_sig', 's1_sig', 'noise_sig', 'clean_sig']
    """
    return [sig_key(name) for name in signal_names(num_spks)]


def count_source_columns(header):
    """Number of separation-target columns (``s<i>_wav``) in a CSV header.

    Arguments
    ---------
    header : list of str
        The CSV's column names.

    Returns
    -------
    int

    Example
    -------
    >>> count_source_columns(["ID", "mix_wav", "s1_wav", "s2_wav", "s_wav"])
    2
    """
    return sum(1 for column in header if _SOURCE_COLUMN.fullmatch(column))


def librimix_folders(num_spks):
    """The signal subfolders of a LibriMix split, as LibriMix names them.

    Example
    -------
    >>> librimix_folders(2)
    ['mix_both', 'mix_clean', 's1', 's2', 'noise']
    """
    return ["mix_both", "mix_clean", *source_names(num_spks), "noise"]


def librimix_columns(num_spks, condition="noisy"):
    """Maps each audio column of a prepared CSV to its LibriMix subfolder.

    Arguments
    ---------
    num_spks : int
        Number of speakers S.
    condition : str
        "noisy" (the input is ``mix_both``) or "clean" (``mix_clean``).

    Returns
    -------
    dict
        CSV column -> subfolder, in the CSV's column order.

    Example
    -------
    >>> librimix_columns(2, "clean")
    {'mix_wav': 'mix_clean', 's1_wav': 's1', 's2_wav': 's2', 'noise_wav': 'noise', 'clean_wav': 'mix_clean'}
    """
    mix = "mix_both" if condition == "noisy" else "mix_clean"
    folders = [mix, *source_names(num_spks), "noise", "mix_clean"]
    return dict(zip(wav_columns(num_spks), folders, strict=True))
