"""Separation of long recordings, chunk by chunk.

A SepFormer attends over its whole input, so its memory grows with the
recording's length (quadratically in the inter-chunk transformer). Long
recordings are therefore cut into overlapping chunks that are separated one
at a time. Two things make the pieces fit together:

* speaker order: a separator's output order is arbitrary and can change from
  one chunk to the next. Each chunk's S outputs are permuted to best match
  (highest summed cosine similarity) the output already assembled on the
  region it overlaps;
* seams: the overlaps are cross-faded with raised-cosine ramps that sum to
  one, then every sample is divided by the sum of the weights it received.

Memory is bounded by the chunk length: besides the preallocated output
(B, T, S), only one chunk's estimates and weights exist at a time. A
recording no longer than one chunk is separated in a single call, exactly as
without chunking.

Chunks are independent until they are assembled, so ``chunk_batch`` of them
can be separated in one call, stacked on the batch axis (a GPU, or a CPU
whose cores a single chunk leaves idle, does more per second); they are then
assembled one by one in the same order, so only the separator's arithmetic
on a larger batch can differ from separating them one at a time. Memory then
holds ``chunk_batch`` chunks' estimates.

Pure torch: ``separate`` may be any callable from B, t to B, t, S.

Authors
 * gmsep contributors 2026
"""

import itertools
import math

import torch

# Defaults at any sample rate, in seconds. LibriMix utterances, the training
# material of the paper, last a few seconds to about 15 s and the demo trains
# on 2 s crops: 8 s chunks stay inside the lengths the model has seen while
# bounding memory and time per chunk; 2 s of overlap hold a few words of every
# speaker, enough to tell the speakers apart when aligning their order.
DEFAULT_CHUNK_SECONDS = 8.0
DEFAULT_OVERLAP_SECONDS = 2.0


def chunk_starts(length, chunk_length, overlap_length):
    """First sample of every chunk: evenly spread, overlaps >= overlap_length.

    The chunks have chunk_length samples, the first starts at 0 and the last
    ends at ``length``.

    Arguments
    ---------
    length : int
        Number of samples T of the recording.
    chunk_length : int
        Samples per chunk.
    overlap_length : int
        Minimum number of samples shared by consecutive chunks (> 0).

    Returns
    -------
    list of int
        One start per chunk; ``[0]`` when the recording fits in one chunk.

    Example
    -------
    >>> chunk_starts(100, 40, 10)
    [0, 30, 60]
    >>> chunk_starts(101, 40, 10)
    [0, 20, 41, 61]
    >>> chunk_starts(30, 40, 10)
    [0]
    """
    _check_lengths(chunk_length, overlap_length)
    if length <= chunk_length:
        return [0]
    hop = chunk_length - overlap_length
    num_chunks = math.ceil((length - overlap_length) / hop)
    spacing = (length - chunk_length) / (num_chunks - 1)
    return [round(i * spacing) for i in range(num_chunks)]


def _check_lengths(chunk_length, overlap_length):
    if chunk_length < 1:
        raise ValueError(f"chunk length must be positive, got {chunk_length}")
    if not 0 < overlap_length < chunk_length:
        raise ValueError(
            f"overlap length must be positive (the speaker order is aligned on "
            f"it) and shorter than the chunk length {chunk_length}, got "
            f"{overlap_length}"
        )


def cross_fade(length, fade_in, fade_out):
    """A chunk's overlap-add weights: raised-cosine ramps at its ends.

    A fade-out of n samples and a fade-in of n samples sum to one, so two
    chunks overlapping by n samples add up to the signal itself.

    Arguments
    ---------
    length : int
        Samples in the chunk.
    fade_in : int
        Samples shared with the previous chunk (0 for the first).
    fade_out : int
        Samples shared with the next chunk (0 for the last).

    Returns
    -------
    torch.Tensor
        The weights, shape [length], in (0, 1].

    Example
    -------
    >>> w = cross_fade(6, 2, 2)
    >>> torch.allclose(w[:2] + w[-2:], torch.ones(2))
    True
    """
    weights = torch.ones(length)
    if fade_in:
        weights[:fade_in] = _ramp(fade_in)
    if fade_out:
        weights[length - fade_out :] = _ramp(fade_out).flip(0)
    return weights


def _ramp(n):
    """sin^2 from about 0 to about 1 in n samples, never exactly 0."""
    return torch.sin(0.5 * math.pi * (torch.arange(n) + 0.5) / n) ** 2


def align_speakers(est_sources, reference, compared=None):
    """Permutes the speakers of est_sources to best match reference.

    The permutation maximises the summed cosine similarity of matched
    speakers over the first ``compared`` samples, for each batch item
    separately (all S! orders are tried: S is 2 or 3).

    Arguments
    ---------
    est_sources : torch.Tensor
        Estimates to reorder, shape B, L, S.
    reference : torch.Tensor
        What their first samples should match, shape B, compared, S.
    compared : int, optional
        Samples compared; all of reference when None.

    Returns
    -------
    torch.Tensor
        est_sources with its last dimension permuted, shape B, L, S.

    Example
    -------
    >>> ref = torch.randn(1, 50, 3)
    >>> torch.equal(align_speakers(ref[..., [2, 0, 1]], ref), ref)
    True
    """
    num_spks = est_sources.shape[-1]
    compared = reference.shape[1] if compared is None else compared
    head = est_sources[:, :compared]  # B, compared, S
    ref = reference / (reference.norm(dim=1, keepdim=True) + 1e-8)
    est = head / (head.norm(dim=1, keepdim=True) + 1e-8)
    similarity = torch.einsum("bli,blj->bij", ref, est)  # B, S (ref), S (est)
    perms = torch.tensor(list(itertools.permutations(range(num_spks))))  # P, S
    speakers = torch.arange(num_spks)
    scores = similarity[:, speakers, perms].sum(-1)  # B, P
    best = perms[scores.argmax(-1)].to(est_sources.device)  # B, S
    index = best.unsqueeze(1).expand_as(est_sources)  # B, L, S
    return est_sources.gather(-1, index)


def chunk_estimates(separate, mix, starts, chunk_length, chunk_batch=1):
    """Separates the chunks of mix, chunk_batch at a time, in order.

    Arguments
    ---------
    separate : callable
        Maps mixtures, shape B', t, to estimates, shape B', t, S.
    mix : torch.Tensor
        The mixture, shape B, T.
    starts : list of int
        The chunks' first samples (:func:`chunk_starts`).
    chunk_length : int
        Samples per chunk.
    chunk_batch : int
        Chunks per call of ``separate``.

    Yields
    ------
    torch.Tensor
        One chunk's estimates, shape B, chunk_length, S, in the order of
        ``starts``.

    Example
    -------
    >>> calls = []
    >>> def separate(x):
    ...     calls.append(x.shape[0])
    ...     return x.unsqueeze(-1)
    >>> mix = torch.arange(10.0).view(1, 10)
    >>> [e[0, :, 0].tolist() for e in chunk_estimates(separate, mix, [0, 3, 6], 4, 2)]
    [[0.0, 1.0, 2.0, 3.0], [3.0, 4.0, 5.0, 6.0], [6.0, 7.0, 8.0, 9.0]]
    >>> calls
    [2, 1]
    """
    if chunk_batch < 1:
        raise ValueError(f"chunk_batch must be at least 1, got {chunk_batch}")
    batch = mix.shape[0]
    for first in range(0, len(starts), chunk_batch):
        group = starts[first : first + chunk_batch]
        chunks = torch.cat(
            [mix[:, start : start + chunk_length] for start in group]
        )  # len(group) * B, L
        est = separate(chunks)  # len(group) * B, L, S
        yield from est.split(batch)


def separate_in_chunks(
    separate,
    mix,
    chunk_length,
    overlap_length,
    progress=None,
    chunk_batch=1,
):
    """Separates a long mixture chunk by chunk with aligned, cross-faded seams.

    Arguments
    ---------
    separate : callable
        Maps a mixture chunk, shape B, t, to its estimates, shape B, t, S.
    mix : torch.Tensor
        The mixture, shape B, T.
    chunk_length : int
        Samples per chunk.
    overlap_length : int
        Minimum samples shared by consecutive chunks.
    progress : callable, optional
        Called with 1 after each chunk (e.g. a tqdm bar's ``update``).
    chunk_batch : int
        Chunks separated per call of ``separate`` (see
        :func:`chunk_estimates`); the assembly is the same.

    Returns
    -------
    torch.Tensor
        The separated sources, shape B, T, S, on the device and dtype of
        ``separate``'s output. When T <= chunk_length it is ``separate(mix)``.

    Example
    -------
    >>> separate = lambda chunk: torch.stack([chunk, -chunk], dim=-1)
    >>> mix = torch.randn(1, 1000)
    >>> out = separate_in_chunks(separate, mix, 300, 100)
    >>> torch.allclose(out, separate(mix), atol=1e-6)
    True
    """
    if mix.dim() != 2:
        raise ValueError(
            f"separate_in_chunks expects a mixture of shape (B, T), got "
            f"{tuple(mix.shape)}"
        )
    length = mix.shape[-1]
    starts = chunk_starts(length, chunk_length, overlap_length)
    if len(starts) == 1:
        est_sources = separate(mix)
        if progress is not None:
            progress(1)
        return est_sources
    output = pending = None
    estimates = chunk_estimates(
        separate, mix, starts, chunk_length, chunk_batch
    )
    for i, (start, est) in enumerate(
        zip(starts, estimates, strict=True)
    ):  # est: B, L, S
        end = start + chunk_length
        if output is None:
            output = est.new_zeros(
                mix.shape[0], length, est.shape[-1]
            )  # B, T, S
            # Summed weights of the samples no earlier chunk has finished:
            # those of the current chunk, [start, end) (the ends increase).
            pending = est.new_zeros(chunk_length)  # L
        else:
            shared = starts[i - 1] + chunk_length - start
            region = slice(start, start + shared)
            assembled = (
                output[:, region] / pending[:shared, None]
            )  # B, shared, S
            est = align_speakers(est, assembled, shared)
        fade_in = starts[i - 1] + chunk_length - start if i > 0 else 0
        fade_out = end - starts[i + 1] if i + 1 < len(starts) else 0
        weights = cross_fade(chunk_length, fade_in, fade_out).to(est)  # L
        output[:, start:end] += est * weights[:, None]
        pending += weights
        # Samples before the next chunk get no more estimates: normalise them
        # and move the window of pending weights to the next chunk.
        done = starts[i + 1] - start if i + 1 < len(starts) else chunk_length
        output[:, start : start + done].div_(pending[:done, None])
        pending = torch.cat([pending[done:], pending.new_zeros(done)])
        if progress is not None:
            progress(1)
    return output
