"""Chunked separation of long recordings: layout, speaker order, seams."""

import itertools

import numpy as np
import pytest
import soundfile as sf
import torch
from gmsep.inference.chunking import (
    align_speakers,
    chunk_starts,
    cross_fade,
    separate_in_chunks,
)
from gmsep.inference.export import export_pretrained
from gmsep.inference.pretrained import NoiseRobustSeparation
from speechbrain.nnet.losses import cal_si_snr
from tiny_config import make_experiment


@pytest.mark.parametrize("length", [401, 1000, 1234, 4000])
def test_chunks_cover_recording_with_overlap(length):
    chunk, overlap = 400, 100
    starts = chunk_starts(length, chunk, overlap)
    assert starts[0] == 0 and starts[-1] + chunk == length
    shared = [a + chunk - b for a, b in itertools.pairwise(starts)]
    assert min(shared) >= overlap
    # evenly spread: no chunk overlaps much more than the others
    assert max(shared) - min(shared) <= 1


def test_cross_fades_sum_to_one():
    length, chunk = 2345, 500
    starts = chunk_starts(length, chunk, 120)
    total = torch.zeros(length)
    for i, start in enumerate(starts):
        fade_in = starts[i - 1] + chunk - start if i else 0
        fade_out = start + chunk - starts[i + 1] if i + 1 < len(starts) else 0
        total[start : start + chunk] += cross_fade(chunk, fade_in, fade_out)
    assert torch.allclose(total, torch.ones(length), atol=1e-6)


@pytest.mark.parametrize("chunk, overlap", [(0, 0), (100, 0), (100, 100)])
def test_bad_chunk_settings(chunk, overlap):
    with pytest.raises(ValueError, match="length"):
        chunk_starts(1000, chunk, overlap)


class OrderFlippingSeparator:
    """A perfect separator (it returns the true sources of each chunk) whose
    speaker order changes on every call, differently per batch item."""

    def __init__(self, sources, chunk, overlap):
        self.sources = sources  # B, T, S
        self.starts = chunk_starts(sources.shape[1], chunk, overlap)
        self.perms = list(itertools.permutations(range(sources.shape[-1])))
        self.calls = []

    def __call__(self, mix_chunk):
        i = len(self.calls)
        self.calls.append(mix_chunk.shape[-1])
        start, length = self.starts[i], mix_chunk.shape[-1]
        chunk = self.sources[:, start : start + length]
        return torch.stack(
            [
                chunk[b][:, list(self.perms[(i + b) % len(self.perms)])]
                for b in range(chunk.shape[0])
            ]
        )


def reference_separate_in_chunks(separate, mix, chunk_length, overlap_length):
    """The straightforward assembly: a recording-long sum of weights."""
    starts = chunk_starts(mix.shape[-1], chunk_length, overlap_length)
    output = weight_sum = None
    for i, start in enumerate(starts):
        end = start + chunk_length
        est = separate(mix[:, start:end])
        if output is None:
            output = est.new_zeros(mix.shape[0], mix.shape[-1], est.shape[-1])
            weight_sum = est.new_zeros(mix.shape[-1])
        else:
            shared = starts[i - 1] + chunk_length - start
            region = slice(start, start + shared)
            assembled = output[:, region] / weight_sum[region, None]
            est = align_speakers(est, assembled, shared)
        fade_in = starts[i - 1] + chunk_length - start if i > 0 else 0
        fade_out = end - starts[i + 1] if i + 1 < len(starts) else 0
        weights = cross_fade(chunk_length, fade_in, fade_out)
        output[:, start:end] += est * weights[:, None]
        weight_sum[start:end] += weights
    return output / weight_sum[:, None]


# (length, chunk, overlap): two chunks, evenly spread ones, and overlaps above
# half a chunk, where three chunks share samples.
@pytest.mark.parametrize(
    "length, chunk, overlap",
    [(700, 400, 100), (5003, 400, 100), (3001, 300, 200), (2500, 250, 240)],
)
def test_chunk_assembly_equals_straightforward_one(length, chunk, overlap):
    def separate(piece):
        # speaker order flips with the sign of the chunk's sum
        sources = torch.stack([piece, 0.5 * piece.roll(7, -1)], dim=-1)
        return sources.flip(-1) if piece.sum() > 0 else sources

    mix = torch.randn(2, length, generator=torch.Generator().manual_seed(3))
    expected = reference_separate_in_chunks(separate, mix, chunk, overlap)
    assert torch.equal(
        separate_in_chunks(separate, mix, chunk, overlap), expected
    )


@pytest.mark.parametrize("num_spks", [2, 3])
def test_speaker_order_consistent_across_chunks(num_spks):
    torch.manual_seed(0)
    sources = torch.randn(2, 5000, num_spks)  # B, T, S
    separator = OrderFlippingSeparator(sources, chunk=1000, overlap=250)
    est = separate_in_chunks(separator, sources.sum(-1), 1000, 250)
    assert len(separator.calls) >= 5
    # every chunk is processed at the chunk length: memory bounded by it
    assert set(separator.calls) == {1000}
    # every item keeps the order of its first chunk
    first_orders = [list(separator.perms[b]) for b in range(2)]
    expected = torch.stack([sources[b][:, first_orders[b]] for b in range(2)])
    assert torch.allclose(est, expected, atol=1e-5)


def test_align_speakers_per_batch_item():
    torch.manual_seed(0)
    ref = torch.randn(2, 300, 3)
    est = torch.stack([ref[0][:, [1, 2, 0]], ref[1][:, [2, 1, 0]]])
    assert torch.equal(align_speakers(est, ref), ref)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("chunking")
    exp_dir, separator = make_experiment(root)
    out = export_pretrained(exp_dir, root / "pretrained")
    return separator, NoiseRobustSeparation.from_hparams(source=str(out))


def test_short_recording_identical_to_unchunked(tiny_model, tmp_path):
    _, model = tiny_model
    path = tmp_path / "short.wav"
    sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 3000), 8000)
    mix, _ = model.load_mixture(path)
    est = model.separate_file(
        path, chunk_seconds=0.5, overlap_seconds=0.1, normalize="none"
    )
    assert torch.equal(est, model.separate_batch(mix))


def test_long_recording_close_to_full_length(tiny_model):
    """Chunked vs full-length output of a tiny random model on 3 chunks.

    Its attention spans the whole input, so chunking changes the context
    and the outputs differ; measured over seeds 0-2: 9.6 to 16.8 dB SI-SNR
    per speaker. One chunk with the speakers swapped drops it to -2.8 to
    2.6 dB, so 6 dB separates aligned from misaligned output.
    """
    separator, _ = tiny_model
    t = torch.arange(10000) / 8000
    mix = (
        torch.sin(2 * torch.pi * 220 * t)
        * (1 + torch.sin(2 * torch.pi * 3 * t))
        + torch.sin(2 * torch.pi * 530 * t)
        + 0.3 * torch.randn(10000, generator=torch.Generator().manual_seed(0))
    ).unsqueeze(0)  # 1, T
    with torch.no_grad():
        full = separator.separate(mix)  # 1, T, S
        chunked = separate_in_chunks(separator.separate, mix, 4000, 1000)
    assert len(chunk_starts(10000, 4000, 1000)) == 3
    si_snr = -cal_si_snr(
        full.transpose(0, 1), chunked.transpose(0, 1)
    )  # 1, 1, S
    assert si_snr.min() >= 6.0, si_snr


@pytest.mark.parametrize("chunk_batch", [2, 3, 10])
def test_batched_chunks_assemble_as_sequential(chunk_batch):
    """A separator that treats every batch item alone gives exactly the
    sequential result: the assembly is the same, in the same order."""
    calls = []

    def separate(piece):
        calls.append(piece.shape[0])
        sources = torch.stack([piece, 0.5 * piece.roll(7, -1)], dim=-1)
        flip = piece.sum(-1) > 0  # per item: speaker order changes
        return torch.where(flip[:, None, None], sources.flip(-1), sources)

    mix = torch.randn(2, 5003, generator=torch.Generator().manual_seed(3))
    sequential = separate_in_chunks(separate, mix, 400, 100)
    num_chunks = len(calls)
    calls.clear()
    progress = []
    batched = separate_in_chunks(
        separate, mix, 400, 100, progress.append, chunk_batch
    )
    assert torch.equal(batched, sequential)
    assert len(progress) == num_chunks
    full, rest = divmod(num_chunks, chunk_batch)
    assert calls == [2 * chunk_batch] * full + ([2 * rest] if rest else [])


def test_batched_chunks_of_a_model_equal_sequential(tiny_model):
    """The tiny model's chunks, 4 at a time: the network's arithmetic on a
    larger batch may round differently, nothing else differs."""
    _, model = tiny_model
    mix = 0.1 * torch.randn(
        2, 30001, generator=torch.Generator().manual_seed(1)
    )
    sequential = model.separate_long(mix, chunk_seconds=0.5)
    model.chunk_batch = 4
    try:
        batched = model.separate_long(mix, chunk_seconds=0.5)
        enhanced = model.enhance_long(mix, chunk_seconds=0.5)
    finally:
        model.chunk_batch = 1
    assert torch.allclose(batched, sequential, rtol=1e-5, atol=1e-6)
    assert torch.allclose(
        enhanced,
        model.enhance_long(mix, chunk_seconds=0.5),
        rtol=1e-5,
        atol=1e-6,
    )
