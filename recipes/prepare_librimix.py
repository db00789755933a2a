"""Writes the CSVs of LibriMix (Libri2Mix / Libri3Mix) for training.

One CSV per split, ``<save_folder>/libri<S>mix_<split>.csv``, with the
columns ``ID, duration, mix_wav, s1_wav, s2_wav[, s3_wav], noise_wav,
clean_wav``: mix_wav is the network input (mix_both for the noisy condition,
mix_clean for the clean one), s<i>_wav the separation targets, noise_wav the
noise and clean_wav the enhancement target (the clean mixture). Paths are
absolute, rows sorted by ID, durations in seconds read from the headers.

Preparation only lists folders and reads audio headers: it never writes,
moves or deletes audio. Rules for an existing CSV at a target path:

* same columns and the same (ID, paths) rows as the corpus: complete, kept
  untouched (so a second call is free and the file's mtime does not change);
* same columns but other rows (other corpus, condition, mode or rate, or an
  interrupted corpus copy since grown): ours but stale, rewritten;
* other columns: not ours, a DataError names it and nothing is overwritten.

CSVs are written to a temporary file then renamed, so an interrupted run never
leaves a partial CSV. The layout of every requested split is checked before
any CSV is written. Safe to run under SpeechBrain's ``run_on_main``.

Command line::

    python -m recipes.prepare_librimix DATA_FOLDER SAVE_FOLDER \\
        --n-spks 2 --sample-rate 8000 --mode min --condition noisy \\
        --splits train-360 dev test [--check-audio]
"""

import argparse
import csv
import logging
import os
import re
import tempfile
from pathlib import Path

from gmsep.data.audio import DataError, check_audio_file, check_csv_audio
from gmsep.data.columns import librimix_columns

logger = logging.getLogger(__name__)

LIBRIMIX_SPLITS = ("train-360", "train-100", "dev", "test")
MAX_REPORT = 5


def check_choice(name, value, choices):
    """Raises a ValueError naming the setting when value is not a choice.

    Example
    -------
    >>> check_choice("mode", "min", ("min", "max"))
    """
    if value not in choices:
        raise ValueError(
            f"{name}={value!r} is not supported, expected one of {list(choices)}"
        )


def check_splits(splits, choices):
    """Returns splits as a tuple (a single name is accepted), checked.

    Example
    -------
    >>> check_splits("dev", LIBRIMIX_SPLITS)
    ('dev',)
    """
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    if not splits:
        raise ValueError(f"splits is empty, expected some of {list(choices)}")
    for split in splits:
        check_choice("splits", split, choices)
    return splits


def layout_tree(top, folders):
    """Draws the expected folder chain below top as a small tree.

    Arguments
    ---------
    top : str or os.PathLike
        The folder the user gave.
    folders : list of str
        The nested folders expected below it, outermost first.

    Returns
    -------
    tree : str
        One indented line per level.

    Example
    -------
    >>> print(layout_tree("/data", ["Libri2Mix/", "wav8k/", "<ID>.wav"]))
      /data/
      └── Libri2Mix/
          └── wav8k/
              └── <ID>.wav
    """
    lines = [f"  {top}/"]
    for depth, name in enumerate(folders):
        lines.append("  " + "    " * depth + f"└── {name}")
    return "\n".join(lines)


def _missing_top(folder):
    """Returns (highest missing folder on the way to folder, its parent)."""
    missing = folder
    for parent in folder.parents:
        if parent.is_dir():
            return missing, parent
        missing = parent
    return missing, missing


def check_folders(data_folder, folders, corpus, layout):
    """Checks that the folders exist, else names the first missing ones.

    Arguments
    ---------
    data_folder : pathlib.Path
        The folder the user gave.
    folders : list of pathlib.Path
        The folders that must exist.
    corpus : str
        What is being looked for, for the message (e.g. "Libri2Mix wav8k min").
    layout : str
        The expected layout, from :func:`layout_tree`.

    Raises
    ------
    DataError
        Naming data_folder when it does not exist, else the first missing
        folders (the highest missing level of each) with the folders found in
        their place, followed by the expected layout.

    Example
    -------
    >>> tmp_path = getfixture("tmp_path")
    >>> (tmp_path / "wav16k").mkdir()
    >>> layout = layout_tree(tmp_path, ["wav8k/"])
    >>> check_folders(
    ...     tmp_path, [tmp_path / "wav8k"], "WHAM!", layout
    ... )  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    gmsep.data.audio.DataError: WHAM! ...(found wav16k/ but not wav8k/)...
    """
    if not data_folder.is_dir():
        raise DataError(
            f"data_folder {data_folder} does not exist (expected {corpus}).\n"
            f"Expected layout:\n{layout}"
        )
    missing = []
    for folder in folders:
        if not folder.is_dir():
            top = _missing_top(folder)
            if top not in missing:
                missing.append(top)
    if not missing:
        return
    lines = []
    for folder, parent in missing[:MAX_REPORT]:
        found = sorted(
            entry.name + "/" for entry in parent.iterdir() if entry.is_dir()
        )
        found = (
            f"found {', '.join(found)} but not"
            if found
            else "no folder, not even"
        )
        lines.append(f"  {folder}/  ({found} {folder.name}/)")
    raise DataError(
        f"{corpus} is not in the expected layout under {data_folder}: "
        f"{len(missing)} missing folder(s):\n" + "\n".join(lines) + "\n"
        f"Expected layout:\n{layout}"
    )


def list_mixture_ids(split_folder, subfolders):
    """Lists the mixture IDs of a split, checking every subfolder has them all.

    Arguments
    ---------
    split_folder : pathlib.Path
        The folder of one split (holding mix_both/, s1/, ...).
    subfolders : list of str
        The subfolders the CSV refers to.

    Returns
    -------
    ids : list of str
        The mixture IDs (wav file names without extension), sorted.

    Raises
    ------
    DataError
        When the split holds no wav file, or when some IDs are missing from
        some subfolders (the first of them named).

    Example
    -------
    >>> tmp_path = getfixture("tmp_path")
    >>> for name in ("mix/a.wav", "mix/b.wav", "s1/a.wav", "s1/b.wav"):
    ...     (tmp_path / name).parent.mkdir(exist_ok=True)
    ...     (tmp_path / name).touch()
    >>> list_mixture_ids(tmp_path, ["mix", "s1"])
    ['a', 'b']
    """
    listed = {
        subfolder: {
            name[: -len(".wav")]
            for name in os.listdir(split_folder / subfolder)
            if name.endswith(".wav")
        }
        for subfolder in subfolders
    }
    ids = set().union(*listed.values())
    if not ids:
        raise DataError(
            f"{split_folder}: no .wav file in {', '.join(subfolders)}/"
        )
    gaps = [
        f"  {split_folder / subfolder}/ lacks {mixture_id}.wav"
        for subfolder in subfolders
        for mixture_id in sorted(ids - listed[subfolder])
    ]
    if gaps:
        raise DataError(
            f"{split_folder}: {len(gaps)} mixture file(s) missing from some "
            f"subfolders (every subfolder must hold every mixture ID), "
            f"the first {min(len(gaps), MAX_REPORT)}:\n"
            + "\n".join(gaps[:MAX_REPORT])
        )
    return sorted(ids)


def _is_complete(csv_path, header, rows):
    """Tells if csv_path already holds header and rows (durations aside).

    Raises a DataError when the file exists with other columns: it is not a
    CSV of this preparation and must not be overwritten.
    """
    if not csv_path.exists():
        return False
    with open(csv_path, newline="") as csv_file:
        existing = list(csv.reader(csv_file))
    if not existing or existing[0] != header:
        found = ", ".join(existing[0]) if existing else "an empty file"
        raise DataError(
            f"{csv_path} exists and is not a CSV of this preparation "
            f"(columns: {found}; expected: {', '.join(header)}). Move it away "
            "or choose another save_folder: it will not be overwritten."
        )
    if len(existing) - 1 != len(rows):
        return False
    for old, new in zip(existing[1:], rows, strict=True):
        if len(old) != len(header) or [old[0], *old[2:]] != [new[0], *new[2:]]:
            return False
        try:
            if float(old[1]) <= 0:
                return False
        except ValueError:
            return False
    return True


def _write_atomically(csv_path, header, rows):
    """Writes a CSV through a temporary file, so it is whole or absent."""
    temp = tempfile.NamedTemporaryFile(
        "w",
        newline="",
        dir=csv_path.parent,
        prefix=f".{csv_path.name}.",
        suffix=".tmp",
        delete=False,
    )
    try:
        with temp:
            writer = csv.writer(temp)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(temp.name, csv_path)
    except BaseException:
        os.unlink(temp.name)
        raise


def write_split_csvs(
    data_folder, split_folders, columns, csv_paths, sample_rate, corpus, layout
):
    """Checks a corpus' layout, then writes the CSV of each split unless complete.

    Shared by the LibriMix and WHAM!/WHAMR! preparations. All splits are
    checked (folders, then mixture IDs) before any CSV is written.

    Arguments
    ---------
    data_folder : pathlib.Path
        The folder the user gave, for the messages.
    split_folders : dict
        Split name -> pathlib.Path of the split's folder.
    columns : dict
        CSV audio column (e.g. "mix_wav") -> the subfolder it points into.
    csv_paths : dict
        Split name -> pathlib.Path of its CSV.
    sample_rate : int
        The sample rate every mixture must have.
    corpus : str
        The corpus looked for, for the messages.
    layout : str
        The expected layout, from :func:`layout_tree`.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> tmp_path = getfixture("tmp_path")
    >>> for name in ("dev/mix/a.wav", "dev/s1/a.wav"):
    ...     (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    ...     sf.write(tmp_path / name, np.zeros(800, dtype="int16"), 8000)
    >>> csv_path = tmp_path / "dev.csv"
    >>> write_split_csvs(
    ...     tmp_path, {"dev": tmp_path / "dev"}, {"mix_wav": "mix", "s1_wav": "s1"},
    ...     {"dev": csv_path}, 8000, "demo", "",
    ... )
    >>> csv_path.read_text().splitlines()[0]
    'ID,duration,mix_wav,s1_wav'
    """
    subfolders = list(dict.fromkeys(columns.values()))
    check_folders(
        data_folder,
        [
            folder / sub
            for folder in split_folders.values()
            for sub in subfolders
        ],
        corpus,
        layout,
    )
    split_ids = {
        split: list_mixture_ids(folder, subfolders)
        for split, folder in split_folders.items()
    }
    header = ["ID", "duration", *columns]
    for split, ids in split_ids.items():
        csv_path = csv_paths[split]
        folder = split_folders[split]
        # duration left empty until the file is known to need (re)writing
        rows = [
            [
                mixture_id,
                "",
                *(
                    str(folder / sub / f"{mixture_id}.wav")
                    for sub in columns.values()
                ),
            ]
            for mixture_id in ids
        ]
        if _is_complete(csv_path, header, rows):
            logger.info("%s is complete, skipping its preparation", csv_path)
            continue
        if csv_path.exists():
            logger.warning("%s lists other files: rewriting it", csv_path)
        for row in rows:
            row[1] = str(check_audio_file(row[2], sample_rate).duration)
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(csv_path, header, rows)
        logger.info("Wrote %s (%d mixtures)", csv_path, len(rows))


def _librimix_root(data_folder, n_spks):
    """Returns the Libri<S>Mix folder: data_folder itself or its child."""
    child = data_folder / f"Libri{n_spks}Mix"
    is_librimix = any((data_folder / f"wav{k}k").is_dir() for k in (8, 16))
    return data_folder if is_librimix and not child.is_dir() else child


def check_speaker_count(librimix_folder, n_spks):
    """Raises a DataError when the folder is Libri<K>Mix with K != n_spks.

    Example
    -------
    >>> check_speaker_count(Path("LibriMix/Libri3Mix"), 2)
    Traceback (most recent call last):
    ...
    gmsep.data.audio.DataError: LibriMix/Libri3Mix holds Libri3Mix but n_spks=2 (num_spks in the hparams): set num_spks: 3, or give the Libri2Mix folder as data_folder
    """
    named = re.fullmatch(r"Libri(\d)Mix", librimix_folder.name)
    if named and int(named.group(1)) != n_spks:
        found = int(named.group(1))
        raise DataError(
            f"{librimix_folder} holds Libri{found}Mix but n_spks={n_spks} "
            f"(num_spks in the hparams): set num_spks: {found}, or give the "
            f"Libri{n_spks}Mix folder as data_folder"
        )


def prepare_librimix(
    data_folder,
    save_folder,
    n_spks=2,
    sample_rate=8000,
    mode="min",
    condition="noisy",
    splits=("train-360", "dev", "test"),
    skip_prep=False,
):
    """Writes one CSV per LibriMix split (see the module docstring).

    Arguments
    ---------
    data_folder : str or os.PathLike
        Either the LibriMix root holding ``Libri<n_spks>Mix/`` or that
        ``Libri<n_spks>Mix/`` folder itself (told apart by its ``wav8k/`` or
        ``wav16k/`` folder).
    save_folder : str or os.PathLike
        Where the CSVs are written (created if needed).
    n_spks : int
        Number of speakers, 2 (Libri2Mix) or 3 (Libri3Mix).
    sample_rate : int
        8000 or 16000: selects the ``wav8k`` or ``wav16k`` folder.
    mode : str
        "min" (mixture cut to the shortest source) or "max".
    condition : str
        "noisy" (mix_wav = mix_both) or "clean" (mix_wav = mix_clean).
    splits : tuple of str
        Among "train-360", "train-100", "dev", "test".
    skip_prep : bool
        If True, only return the CSV paths.

    Returns
    -------
    csv_paths : dict
        Split name -> path (str) of its CSV.

    Raises
    ------
    ValueError
        For an unsupported setting.
    DataError
        When the corpus is missing or not in the expected layout, or a
        mixture lacks a file in some subfolder or its mix file is unusable.

    Example
    -------
    >>> paths = prepare_librimix("LibriMix", "csv", splits=["dev"], skip_prep=True)
    >>> os.path.basename(paths["dev"])
    'libri2mix_dev.csv'
    """
    check_choice("n_spks", n_spks, (2, 3))
    check_choice("sample_rate", sample_rate, (8000, 16000))
    check_choice("mode", mode, ("min", "max"))
    check_choice("condition", condition, ("noisy", "clean"))
    splits = check_splits(splits, LIBRIMIX_SPLITS)
    save_folder = Path(os.path.abspath(save_folder))
    csv_paths = {
        split: save_folder / f"libri{n_spks}mix_{split}.csv" for split in splits
    }
    if not skip_prep:
        data_folder = Path(os.path.abspath(data_folder))
        root = _librimix_root(data_folder, n_spks)
        check_speaker_count(root, n_spks)
        rate_folder = f"wav{sample_rate // 1000}k"
        columns = librimix_columns(n_spks, condition)
        chain = [] if root == data_folder else [f"{root.name}/"]
        layout = layout_tree(
            data_folder,
            [
                *chain,
                f"{rate_folder}/",
                f"{mode}/",
                "{" + ", ".join(splits) + "}/",
                "{" + ", ".join(dict.fromkeys(columns.values())) + "}/<ID>.wav",
            ],
        )
        write_split_csvs(
            data_folder,
            {split: root / rate_folder / mode / split for split in splits},
            columns,
            csv_paths,
            sample_rate,
            f"Libri{n_spks}Mix ({rate_folder}, {mode})",
            layout,
        )
    return {split: str(path) for split, path in csv_paths.items()}


def check_prepared_audio(csv_paths, sample_rate):
    """Checks the header of every file the prepared CSVs list.

    Arguments
    ---------
    csv_paths : dict
        Split name -> CSV path, as returned by the preparation.
    sample_rate : int
        The sample rate every file must have.

    Returns
    -------
    n_files : int
        The number of files checked.

    Example
    -------
    >>> check_prepared_audio({}, 8000)
    0
    """
    return sum(
        check_csv_audio(path, sample_rate=sample_rate)
        for path in csv_paths.values()
    )


def add_common_arguments(parser, default_splits, split_choices):
    """Adds the arguments every preparation's command line takes.

    Example
    -------
    >>> parser = argparse.ArgumentParser()
    >>> add_common_arguments(parser, ["dev"], LIBRIMIX_SPLITS)
    >>> parser.parse_args(["data", "csv", "--mode", "max"]).mode
    'max'
    """
    parser.add_argument("data_folder", help="the corpus folder")
    parser.add_argument("save_folder", help="where the CSVs are written")
    parser.add_argument(
        "--sample-rate", type=int, default=8000, choices=(8000, 16000)
    )
    parser.add_argument("--mode", default="min", choices=("min", "max"))
    parser.add_argument(
        "--splits",
        nargs="+",
        default=list(default_splits),
        choices=split_choices,
    )
    parser.add_argument(
        "--check-audio",
        action="store_true",
        help="then check the header of every listed file (rate, channels, truncation)",
    )


def run_preparation(parser, prepare, args, **settings):
    """Runs a preparation from parsed arguments; a DataError exits with 1."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        csv_paths = prepare(
            args.data_folder,
            args.save_folder,
            sample_rate=args.sample_rate,
            mode=args.mode,
            splits=args.splits,
            **settings,
        )
        if args.check_audio:
            n_files = check_prepared_audio(csv_paths, args.sample_rate)
            logger.info("%d audio files checked", n_files)
    except DataError as err:
        parser.exit(1, f"error: {err}\n")


def main(argv=None):
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, ["train-360", "dev", "test"], LIBRIMIX_SPLITS)
    parser.add_argument("--n-spks", type=int, default=2, choices=(2, 3))
    parser.add_argument(
        "--condition", default="noisy", choices=("noisy", "clean")
    )
    args = parser.parse_args(argv)
    run_preparation(
        parser,
        prepare_librimix,
        args,
        n_spks=args.n_spks,
        condition=args.condition,
    )


if __name__ == "__main__":
    main()
