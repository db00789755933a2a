"""Shared pytest fixtures: tiny corpora in the LibriMix and WHAM! layouts,
and a guard against tests that write into results/."""

import os

import numpy as np
import pytest
import soundfile as sf
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WHAM_FOLDERS = {
    "wham": ("mix_both", "mix_clean", "mix_single", "s1", "s2", "noise"),
    "whamr": (
        "mix_both_reverb",
        "mix_clean_reverb",
        "mix_both_anechoic",
        "mix_clean_anechoic",
        "s1_anechoic",
        "s2_anechoic",
        "s1_reverb",
        "s2_reverb",
        "noise",
    ),
}


def _write_mixtures(split_folder, folders, ids, sample_rate):
    """Writes one short mono 16-bit wav per (folder, ID); returns ID -> frames."""
    rng = np.random.default_rng(0)
    frames = {}
    for i, mixture_id in enumerate(ids):
        # distinct lengths so that durations identify the rows
        frames[mixture_id] = (i + 1) * sample_rate // 20
        for folder in folders:
            (split_folder / folder).mkdir(parents=True, exist_ok=True)
            samples = rng.integers(
                -1000, 1000, frames[mixture_id], dtype=np.int16
            )
            sf.write(
                split_folder / folder / f"{mixture_id}.wav",
                samples,
                sample_rate,
            )
    return frames


@pytest.fixture
def make_librimix_tree():
    """Returns make(root, n_spks, sample_rate, mode, splits, n_mixtures).

    It writes ``root/Libri<S>Mix/wav<k>k/<mode>/<split>/{mix_both, mix_clean,
    s1, ..., noise}/<ID>.wav`` and returns {split: {ID: frames}}.
    """

    def make(
        root,
        n_spks=2,
        sample_rate=8000,
        mode="min",
        splits=("dev",),
        n_mixtures=2,
    ):
        folders = (
            "mix_both",
            "mix_clean",
            *(f"s{i + 1}" for i in range(n_spks)),
        )
        tree = {}
        for split in splits:
            ids = [
                "_".join(
                    f"{100 + 10 * i + s}-{2000 + s}-{i:04d}"
                    for s in range(n_spks)
                )
                for i in range(n_mixtures)
            ]
            split_folder = (
                root / f"Libri{n_spks}Mix" / f"wav{sample_rate // 1000}k"
            )
            tree[split] = _write_mixtures(
                split_folder / mode / split,
                (*folders, "noise"),
                ids,
                sample_rate,
            )
        return tree

    return make


@pytest.fixture
def make_wham_tree():
    """Returns make(root, version, sample_rate, mode, splits, n_mixtures).

    It writes ``root/wav<k>k/<mode>/<split>/<the version's folders>/<ID>.wav``
    and returns {split: {ID: frames}}.
    """

    def make(
        root,
        version="wham",
        sample_rate=8000,
        mode="min",
        splits=("tt",),
        n_mixtures=2,
    ):
        tree = {}
        for split in splits:
            ids = [
                f"01{i}a010{i}_0.{i}1_40{i}c020r_-0.{i}1"
                for i in range(n_mixtures)
            ]
            split_folder = root / f"wav{sample_rate // 1000}k" / mode / split
            tree[split] = _write_mixtures(
                split_folder, WHAM_FOLDERS[version], ids, sample_rate
            )
        return tree

    return make


@pytest.fixture
def one_thread():
    """Runs a test on one torch thread (tiny tensors: more only contend)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _entries_under(folders):
    """Every file and folder below the given folders (none if absent)."""
    entries = set()
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            entries.update(os.path.join(root, name) for name in dirs + files)
    return entries


@pytest.fixture(autouse=True)
def leaves_no_results():
    """Fails a test that leaves new files or folders in results/ of the
    repository or of the working directory: an experiment file loaded
    without an ``output_folder`` override creates its relative
    ``results/<experiment>/<seed>/save`` there (a user's runs live there)."""
    folders = {
        os.path.realpath(os.path.join(base, "results"))
        for base in (REPO, os.getcwd())
    }
    before = _entries_under(folders)
    yield
    new = sorted(_entries_under(folders) - before)
    if new:
        pytest.fail(
            f"left {len(new)} new entries in results/ ({new[0]}, ...): "
            "give load_experiment or train.py an output_folder under tmp_path",
            pytrace=False,
        )
