"""Writes the CSVs of WHAM! and WHAMR! for training.

One CSV per split, ``<save_folder>/<version>_<split>.csv`` (e.g.
``wham_tr.csv``, ``whamr_tt.csv``), with the columns ``ID, duration,
mix_wav, s1_wav, s2_wav, noise_wav, clean_wav``:

========== ============== ======================
column     WHAM!          WHAMR!
========== ============== ======================
mix_wav    mix_both       mix_both_reverb
s1_wav     s1             s1_anechoic
s2_wav     s2             s2_anechoic
noise_wav  noise          noise
clean_wav  mix_clean      mix_clean_anechoic
========== ============== ======================

The corpus is expected as ``<data_folder>/wav{8,16}k/{min,max}/{tr,cv,tt}/``.
Same conventions as :mod:`recipes.prepare_librimix` (absolute paths, sorted
rows, header durations, atomic and idempotent writes, no audio touched, an
existing CSV of another format never overwritten).

Command line::

    python -m recipes.prepare_wham DATA_FOLDER SAVE_FOLDER --version whamr \\
        --sample-rate 8000 --mode min --splits tr cv tt [--check-audio]
"""

import argparse
import os
from pathlib import Path

from gmsep.data.columns import wav_columns

from recipes.prepare_librimix import (
    add_common_arguments,
    check_choice,
    check_splits,
    layout_tree,
    run_preparation,
    write_split_csvs,
)

WHAM_SPLITS = ("tr", "cv", "tt")
# CSV column -> subfolder, per version
WHAM_COLUMNS = {
    "wham": dict(
        zip(
            wav_columns(2),
            ["mix_both", "s1", "s2", "noise", "mix_clean"],
            strict=True,
        )
    ),
    "whamr": dict(
        zip(
            wav_columns(2),
            [
                "mix_both_reverb",
                "s1_anechoic",
                "s2_anechoic",
                "noise",
                "mix_clean_anechoic",
            ],
            strict=True,
        )
    ),
}
CORPUS_NAMES = {"wham": "WHAM!", "whamr": "WHAMR!"}


def prepare_wham(
    data_folder,
    save_folder,
    version="wham",
    sample_rate=8000,
    mode="min",
    splits=WHAM_SPLITS,
    skip_prep=False,
):
    """Writes one CSV per WHAM! or WHAMR! split (see the module docstring).

    Arguments
    ---------
    data_folder : str or os.PathLike
        The corpus folder holding ``wav8k/`` or ``wav16k/``.
    save_folder : str or os.PathLike
        Where the CSVs are written (created if needed).
    version : str
        "wham" (noisy) or "whamr" (noisy and reverberant).
    sample_rate : int
        8000 or 16000: selects the ``wav8k`` or ``wav16k`` folder.
    mode : str
        "min" or "max".
    splits : tuple of str
        Among "tr", "cv", "tt".
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
    >>> paths = prepare_wham("whamr", "csv", version="whamr", skip_prep=True)
    >>> os.path.basename(paths["tt"])
    'whamr_tt.csv'
    """
    check_choice("version", version, tuple(WHAM_COLUMNS))
    check_choice("sample_rate", sample_rate, (8000, 16000))
    check_choice("mode", mode, ("min", "max"))
    splits = check_splits(splits, WHAM_SPLITS)
    save_folder = Path(os.path.abspath(save_folder))
    csv_paths = {
        split: save_folder / f"{version}_{split}.csv" for split in splits
    }
    if not skip_prep:
        data_folder = Path(os.path.abspath(data_folder))
        rate_folder = f"wav{sample_rate // 1000}k"
        columns = WHAM_COLUMNS[version]
        layout = layout_tree(
            data_folder,
            [
                f"{rate_folder}/",
                f"{mode}/",
                "{" + ", ".join(splits) + "}/",
                "{" + ", ".join(columns.values()) + "}/<ID>.wav",
            ],
        )
        write_split_csvs(
            data_folder,
            {
                split: data_folder / rate_folder / mode / split
                for split in splits
            },
            columns,
            csv_paths,
            sample_rate,
            f"{CORPUS_NAMES[version]} ({rate_folder}, {mode})",
            layout,
        )
    return {split: str(path) for split, path in csv_paths.items()}


def main(argv=None):
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, WHAM_SPLITS, WHAM_SPLITS)
    parser.add_argument(
        "--version", default="wham", choices=tuple(WHAM_COLUMNS)
    )
    args = parser.parse_args(argv)
    run_preparation(parser, prepare_wham, args, version=args.version)


if __name__ == "__main__":
    main()
