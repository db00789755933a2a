"""Tests of the data pipelines (gmsep.data.pipelines) and dynamic mixing."""

import csv

import numpy as np
import pytest
import soundfile as sf
import speechbrain as sb
import torch
from gmsep.data.audio import DataError
from gmsep.data.dynamic_mixing import (
    MAX_AMP,
    DynamicMixer,
    DynamicMixingDataset,
    librimix_pools,
)
from gmsep.data.mixing import integrated_loudness
from gmsep.data.pipelines import dataio_prep, signal_names
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataloader import make_dataloader

NUM_SPEAKERS = 5


def speaker_freq(speaker):
    """The frequency (Hz) of the tone that identifies a test speaker."""
    return 200 * (speaker + 1)


def write_corpus(folder, num_spks, sample_rate, num_mix=6, ids=None):
    """Writes a tiny LibriMix-like corpus and its prepared CSV.

    Source i of mixture k is speaker (k + i) % NUM_SPEAKERS: a tone at
    speaker_freq plus a little noise, so a source's speaker can be told from
    its spectrum. Samples are written as integers, so that mix = clean + noise
    and clean = s1 + ... + sS hold exactly after reading.

    Returns
    -------
    csv_path : str
    lengths : list of int
        Samples of each mixture, in CSV order.
    """
    rng = np.random.default_rng(num_spks * sample_rate)
    folder.mkdir(parents=True, exist_ok=True)
    rows, lengths = [], []
    for k in range(num_mix):
        length = sample_rate // 10 + 37 * k
        time = np.arange(length) / sample_rate
        speakers = [(k + i) % NUM_SPEAKERS for i in range(num_spks)]
        sources = [
            np.round(2000 * np.sin(2 * np.pi * speaker_freq(spk) * time))
            + rng.integers(-200, 200, length)
            for spk in speakers
        ]
        noise = rng.integers(-1000, 1000, length)
        clean = np.sum(sources, axis=0)
        signals = dict(
            zip(
                signal_names(num_spks),
                [clean + noise, *sources, noise, clean],
                strict=True,
            )
        )
        mixture_id = (
            ids[k]
            if ids
            else "_".join(
                f"{spk}-{100 + k}-{i:04d}" for i, spk in enumerate(speakers)
            )
        )
        row = {"ID": mixture_id, "duration": length / sample_rate}
        for name, samples in signals.items():
            path = folder / name / f"{mixture_id}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(
                path, samples.astype("int16"), sample_rate, subtype="PCM_16"
            )
            row[f"{name}_wav"] = str(path)
        rows.append(row)
        lengths.append(length)
    csv_path = folder / "data.csv"
    with open(csv_path, "w", newline="") as csv_file:
        writer = csv.DictWriter(csv_file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(csv_path), lengths


def make_hparams(tmp_path, num_spks=2, sample_rate=8000, **options):
    """Hyperparameters with the three splits on one tiny corpus."""
    csv_path, lengths = write_corpus(tmp_path / "corpus", num_spks, sample_rate)
    hparams = {
        "train_data": csv_path,
        "valid_data": csv_path,
        "test_data": csv_path,
        "num_spks": num_spks,
        "sample_rate": sample_rate,
        "dataloader_opts": {"batch_size": 1, "shuffle": True},
    }
    hparams.update(options)
    return hparams, lengths


def keys(num_spks):
    return [f"{name}_sig" for name in signal_names(num_spks)]


def sources_of(item, num_spks):
    return torch.stack([item[f"s{i}_sig"] for i in range(1, num_spks + 1)])


def dominant_speaker(signal, sample_rate):
    """The test speaker whose tone dominates a signal's spectrum."""
    spectrum = torch.fft.rfft(signal).abs()
    freq = spectrum.argmax().item() * sample_rate / len(signal)
    return min(
        range(NUM_SPEAKERS), key=lambda spk: abs(speaker_freq(spk) - freq)
    )


@pytest.mark.parametrize(
    "num_spks, sample_rate", [(2, 8000), (3, 16000), (3, 8000)]
)
def test_items_have_every_key(tmp_path, num_spks, sample_rate):
    hparams, lengths = make_hparams(tmp_path, num_spks, sample_rate)
    datasets = dataio_prep(hparams)
    assert list(datasets) == ["train", "valid", "test"]
    for dataset in datasets.values():
        assert len(dataset) == len(lengths)
        for item, length in zip(dataset, lengths, strict=True):
            assert list(item) == ["id", *keys(num_spks)]
            for key in keys(num_spks):
                assert item[key].dtype == torch.float32
                assert item[key].shape == (length,)
            assert torch.equal(
                item["mix_sig"], item["clean_sig"] + item["noise_sig"]
            )


def test_missing_source_column(tmp_path):
    hparams, _ = make_hparams(tmp_path, num_spks=2)
    hparams["num_spks"] = 3
    with pytest.raises(DataError, match="s3_wav"):
        dataio_prep(hparams)


def test_padded_batch(tmp_path):
    hparams, lengths = make_hparams(tmp_path)
    loader = make_dataloader(dataio_prep(hparams)["valid"], batch_size=2)
    batch = next(iter(loader))
    assert isinstance(batch, PaddedBatch)
    assert batch.mix_sig.data.shape == (2, max(lengths[:2]))
    assert batch.s2_sig.data.shape == (2, max(lengths[:2]))
    assert len(batch.id) == 2


def test_crop_same_segment_in_all_signals(tmp_path):
    crop = 850  # longer than the first two items of the corpus, shorter than the rest
    hparams, lengths = make_hparams(tmp_path, training_signal_len=crop)
    datasets = dataio_prep(hparams)
    for cropped, full, length in zip(
        datasets["train"], datasets["valid"], lengths, strict=True
    ):
        assert cropped["id"] == full["id"]
        if length <= crop:
            assert cropped["mix_sig"].shape == (length,)
            continue
        assert cropped["mix_sig"].shape == (crop,)
        # The mixture has noise everywhere, so it fixes the segment's start
        windows = full["mix_sig"].unfold(0, crop, 1)
        (start,) = torch.nonzero((windows == cropped["mix_sig"]).all(-1))[:, 0]
        for key in keys(2):
            assert torch.equal(cropped[key], full[key][start : start + crop])
        assert torch.equal(
            cropped["mix_sig"], cropped["clean_sig"] + cropped["noise_sig"]
        )
        assert torch.equal(
            cropped["clean_sig"], cropped["s1_sig"] + cropped["s2_sig"]
        )
    # Only the training set is cropped
    assert [len(item["mix_sig"]) for item in datasets["test"]] == lengths


def brain_train_loader(dataset, dataloader_opts):
    """A training loader made the way Brain.fit makes it."""
    brain = sb.Brain(modules={}, run_opts={"device": "cpu"})
    loader = brain.make_dataloader(dataset, sb.Stage.TRAIN, **dataloader_opts)
    return brain, loader


def epoch_order(brain, loader, epoch):
    brain.train_sampler.set_epoch(epoch)
    return [item_id for batch in loader for item_id in batch.id]


def test_training_is_shuffled_by_default(tmp_path):
    hparams, _ = make_hparams(tmp_path)
    train = dataio_prep(hparams)["train"]
    brain, loader = brain_train_loader(train, hparams["dataloader_opts"])
    orders = [epoch_order(brain, loader, epoch) for epoch in (1, 2, 3)]
    assert all(sorted(order) == sorted(orders[0]) for order in orders)
    assert len({tuple(order) for order in orders}) > 1


def test_sorting_turns_shuffling_off(tmp_path):
    hparams, lengths = make_hparams(tmp_path, sorting="descending")
    train = dataio_prep(hparams)["train"]
    assert hparams["dataloader_opts"]["shuffle"] is False
    assert [len(item["mix_sig"]) for item in train] == sorted(
        lengths, reverse=True
    )
    hparams["sorting"] = "by-length"
    with pytest.raises(ValueError, match="sorting"):
        dataio_prep(hparams)


@pytest.mark.parametrize("num_spks", [2, 3])
def test_dynamic_mixing_items(tmp_path, num_spks):
    hparams, lengths = make_hparams(
        tmp_path, num_spks, dynamic_mixing=True, training_signal_len=820
    )
    train = dataio_prep(hparams)["train"]
    assert isinstance(train, DynamicMixingDataset)
    assert len(train) == len(lengths)
    item_lengths = set()
    for epoch in (1, 2):
        train.set_epoch(epoch)
        for item in train:
            item_lengths.add(len(item["mix_sig"]))
            assert list(item) == ["id", *keys(num_spks)]
            assert all(
                item[key].dtype == torch.float32 for key in keys(num_spks)
            )
            # Cropped to the shortest drawn file, at most training_signal_len
            assert min(lengths) <= len(item["mix_sig"]) <= 820
            sources = sources_of(item, num_spks)
            speakers = {dominant_speaker(source, 8000) for source in sources}
            assert len(speakers) == num_spks
            assert torch.equal(item["clean_sig"], sources.sum(0))
            assert torch.equal(
                item["mix_sig"], item["clean_sig"] + item["noise_sig"]
            )
            assert item["mix_sig"].abs().max() <= 1.0
    assert 820 in item_lengths


def test_dynamic_mixing_reproducible_and_new_each_epoch(tmp_path):
    hparams, _ = make_hparams(tmp_path, dynamic_mixing=True, seed=7)
    first, second = dataio_prep(hparams)["train"], dataio_prep(hparams)["train"]
    first.set_epoch(3)
    second.set_epoch(3)
    for index in range(len(first)):
        for key in keys(2):
            assert torch.equal(first[index][key], second[index][key])
    mixes = [first[0]["mix_sig"]]
    first.set_epoch(4)
    mixes.append(first[0]["mix_sig"])
    assert mixes[0].shape != mixes[1].shape or not torch.equal(*mixes)


def test_dynamic_mixing_scales_loud_mixtures_below_clipping(tmp_path):
    csv_path, _ = write_corpus(tmp_path, num_spks=2, sample_rate=8000)
    speakers, noises, _ = librimix_pools(csv_path, 2)
    # Sources at 0 dB RMS peak well above full scale
    mixer = DynamicMixer(speakers, noises, 2, 8000, speech_levels=(0.0, 0.0))
    for index in range(4):
        mix, s1, s2, noise, clean = mixer(index)
        peak = max(signal.abs().max() for signal in (mix, s1, s2, noise, clean))
        assert MAX_AMP - 1e-3 <= peak <= MAX_AMP + 1e-6
        assert torch.equal(mix, clean + noise)


def test_dynamic_mixing_rejects_other_naming(tmp_path):
    ids = [f"mixture_{k}" for k in range(3)]
    csv_path, _ = write_corpus(tmp_path, 2, 8000, num_mix=3, ids=ids)
    with pytest.raises(DataError, match="LibriMix naming"):
        librimix_pools(csv_path, 2)


def test_dynamic_mixing_needs_enough_speakers(tmp_path):
    ids = ["1-1-0001_2-1-0001_1-1-0002", "2-2-0001_1-2-0001_2-2-0002"]
    csv_path, _ = write_corpus(tmp_path, 3, 8000, num_mix=2, ids=ids)
    with pytest.raises(DataError, match="2 speaker"):
        librimix_pools(csv_path, 3)


def write_noise_files(folder, names, seconds=0.6, sample_rate=8000):
    """Gaussian clips long enough for the 400 ms loudness blocks, in float."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = str(folder / f"{name}.wav")
        samples = rng.normal(0, 0.05, int(seconds * sample_rate))
        sf.write(path, samples, sample_rate, subtype="FLOAT")
        paths.append(path)
    return paths


def test_dynamic_mixing_draws_librimix_loudness(tmp_path):
    """The default rule: sources at -33..-25 LUFS, noise at -38..-30 LUFS
    (pyloudnorm's integrated loudness), as LibriMix draws them."""
    paths = write_noise_files(tmp_path, ["a1", "a2", "b1", "c1", "n1", "n2"])
    speakers = {"1": paths[:2], "2": paths[2:3], "3": paths[3:4]}
    mixer = DynamicMixer(speakers, paths[4:], 2, 8000)
    assert mixer.levels == "librimix"
    source_levels, noise_levels = [], []
    for index in range(12):
        mix, s1, s2, noise, clean = mixer(index)
        assert torch.equal(mix, clean + noise)
        source_levels += [integrated_loudness(s, 8000) for s in (s1, s2)]
        noise_levels.append(integrated_loudness(noise, 8000))
    tolerance = 0.05  # the meter's gating on the leveled signal
    assert -33 - tolerance <= min(source_levels)
    assert max(source_levels) <= -25 + tolerance
    assert -38 - tolerance <= min(noise_levels)
    assert max(noise_levels) <= -30 + tolerance
    # Drawn, not fixed: the levels spread over their ranges.
    assert max(source_levels) - min(source_levels) > 4
    assert max(noise_levels) - min(noise_levels) > 3


def test_dynamic_mixing_levels_choose_the_rule(tmp_path):
    paths = write_noise_files(tmp_path, ["a", "b", "n"])
    speakers = {"1": paths[:1], "2": paths[1:2]}
    wham = DynamicMixer(speakers, paths[2:], 2, 8000, levels="wham")
    librimix = DynamicMixer(speakers, paths[2:], 2, 8000)
    # The same draws of sources, other levels.
    assert not torch.equal(wham(0)[0], librimix(0)[0])
    with pytest.raises(ValueError, match="dynamic_mixing_levels"):
        DynamicMixer(speakers, paths[2:], 2, 8000, levels="lufs")
    hparams, _ = make_hparams(
        tmp_path, dynamic_mixing=True, dynamic_mixing_levels="wham"
    )
    assert dataio_prep(hparams)["train"].mixer.levels == "wham"
    del hparams["dynamic_mixing_levels"]
    assert dataio_prep(hparams)["train"].mixer.levels == "librimix"
