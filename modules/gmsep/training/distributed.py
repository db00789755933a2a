"""Collectives for data-parallel (DDP) training with gradient modulation.

Under DDP every process holds one shard of the batch. Gradient modulation
must see each task's gradient averaged over all processes, i.e. the gradient
of the whole batch: DDP averages what the main (SS) backward writes into
``.grad``, but the auxiliary (SE) gradient comes from ``torch.autograd.grad``,
which DDP does not hook, so it is averaged here (``all_reduce_mean``) before
the modulation. Decisions that change the control flow (skipping a batch)
must be taken by all processes together, or the next collective hangs
(``all_processes_agree``). Validation and test are sharded too: each process
evaluates its own items (``EvaluationShardSampler``), and the losses and
per-utterance metrics are combined afterwards (``mean_over_processes``,
``gather_in_item_order``). At the end, ``leave_process_group`` stops the
backend's threads before the interpreter exits.

The reductions go through SpeechBrain's ``ddp_all_reduce``, so they follow
its rules (the identity without a process group or inside a main-process-only
section). What is here is what ``speechbrain.utils.distributed`` lacks: an
average (gloo has no AVG reduction, so ``ddp_all_reduce`` cannot average on
CPU), a gather of Python objects, a sampler that never repeats an item, and
a teardown.

Without an initialised process group every function is the identity.

Authors
 * gmsep contributors 2026
"""

import torch
import torch.distributed as dist
from speechbrain.utils.distributed import (
    ddp_all_reduce,
    ddp_barrier,
    ddp_prevent_block,
    is_distributed_initialized,
)


def all_reduce_mean(tensors):
    """Averages every tensor over all processes, in one collective.

    The tensors are flattened into one bucket per (device, dtype), normally a
    single bucket, so a step costs one all-reduce whatever the number of
    parameter tensors. SpeechBrain's ``ddp_all_reduce`` does the reduction;
    the bucketing and the division are here because it reduces one tensor
    and gloo has no AVG reduction.

    Arguments
    ---------
    tensors : sequence of torch.Tensor or None
        The same shapes, in the same order, on every process (e.g. the
        gradients of the same parameters). None entries (a parameter the loss
        does not reach) are kept; they must be the same on every process.

    Returns
    -------
    list of torch.Tensor or None
        The averages, new tensors (the inputs are not modified); the inputs
        themselves without a process group.

    Example
    -------
    >>> grads = [torch.ones(2, 3), None, torch.zeros(4)]
    >>> averaged = all_reduce_mean(grads)  # a single process: unchanged
    >>> averaged[0].shape, averaged[1], averaged[2].shape
    (torch.Size([2, 3]), None, torch.Size([4]))
    """
    tensors = list(tensors)
    # Where ddp_all_reduce would not reduce, dividing would be wrong.
    if ddp_prevent_block() or dist.get_world_size() == 1:
        return tensors
    buckets = {}
    for i, tensor in enumerate(tensors):
        if tensor is not None:
            buckets.setdefault((tensor.device, tensor.dtype), []).append(i)
    averaged = list(tensors)
    world_size = dist.get_world_size()
    for indices in buckets.values():
        flat = torch.cat([tensors[i].reshape(-1) for i in indices])
        # SUM then divide: gloo has no AVG reduction.
        ddp_all_reduce(flat, dist.ReduceOp.SUM)
        flat.div_(world_size)
        chunks = flat.split([tensors[i].numel() for i in indices])
        for i, chunk in zip(indices, chunks, strict=True):
            averaged[i] = chunk.view_as(tensors[i])
    return averaged


def all_processes_agree(flags):
    """Which flags are True on every process (a logical AND across processes).

    Arguments
    ---------
    flags : torch.Tensor
        Booleans, shape F, the same F on every process.

    Returns
    -------
    list of bool
        Length F.

    Example
    -------
    >>> all_processes_agree(torch.tensor([True, False]))
    [True, False]
    """
    agreed = ddp_all_reduce(flags.to(torch.int32), dist.ReduceOp.MIN)
    return agreed.bool().tolist()


def _world():
    """(rank, world size); (0, 1) without a process group."""
    if not is_distributed_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


class EvaluationShardSampler(torch.utils.data.Sampler):
    """Items rank, rank + W, rank + 2 W, ... of a dataset (W processes).

    Unlike ``torch.utils.data.DistributedSampler`` it never repeats an item to
    even out the shares, so every item is evaluated exactly once and the
    averages are those of the whole set.

    Arguments
    ---------
    num_items : int
        Length of the dataset.
    rank, world_size : int, optional
        This process and the number of processes; by default those of the
        process group (0 and 1 without one).

    Example
    -------
    >>> list(EvaluationShardSampler(5, rank=1, world_size=2))
    [1, 3]
    """

    def __init__(self, num_items, rank=None, world_size=None):
        default_rank, default_world = _world()
        self.rank = default_rank if rank is None else rank
        self.world_size = default_world if world_size is None else world_size
        self.num_items = num_items

    def __iter__(self):
        return iter(range(self.rank, self.num_items, self.world_size))

    def __len__(self):
        return len(range(self.rank, self.num_items, self.world_size))


def mean_over_processes(mean, count, device="cpu"):
    """The mean over all processes' items, from each process's own mean.

    Arguments
    ---------
    mean : float
        This process's mean (anything when ``count`` is 0).
    count : int
        How many values it averaged.
    device : str or torch.device
        Where the collective runs (the process's device: nccl needs CUDA).

    Returns
    -------
    float
        The count-weighted mean; ``mean`` itself without a process group.

    Example
    -------
    >>> mean_over_processes(2.5, 4)
    2.5
    """
    if not is_distributed_initialized():
        return mean
    sums = torch.tensor(
        [float(mean) * count if count else 0.0, float(count)],
        dtype=torch.float64,
        device=device,
    )
    ddp_all_reduce(sums, dist.ReduceOp.SUM)
    total, total_count = sums.tolist()
    return total / total_count if total_count else float("nan")


def gather_in_item_order(rows):
    """All processes' per-item rows, in the order of the dataset.

    SpeechBrain has a broadcast of objects (``ddp_broadcast``) but no gather,
    so this calls ``torch.distributed.all_gather_object`` itself.

    Arguments
    ---------
    rows : list
        This process's rows, one per item of its ``EvaluationShardSampler``
        share, in that order.

    Returns
    -------
    list
        Every process's rows interleaved back to dataset order (item i came
        from process i mod W); ``rows`` itself without a process group.

    Example
    -------
    >>> gather_in_item_order(["a", "b"])
    ['a', 'b']
    """
    if not is_distributed_initialized():
        return rows
    shares = [None] * dist.get_world_size()
    dist.all_gather_object(shares, rows)
    ordered = []
    for i in range(max(len(share) for share in shares)):
        ordered.extend(share[i] for share in shares if i < len(share))
    return ordered


def leave_process_group():
    """Waits for every process, then destroys the process group: call it
    last, before the interpreter exits.

    A process that exits with its group alive aborts now and then
    ("terminate called without an active exception", 1 in 5 two-process
    gloo runs): the backend's worker threads still run while the
    interpreter shuts down. ``destroy_process_group`` stops them first, and
    the barrier before it keeps a process from tearing down the group while
    a peer is still in a collective. SpeechBrain has the barrier
    (``ddp_barrier``) but no teardown.

    Example
    -------
    >>> leave_process_group()  # no process group: nothing to do
    """
    if not is_distributed_initialized():
        return
    ddp_barrier()
    dist.destroy_process_group()
