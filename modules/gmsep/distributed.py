"""Collectives for data-parallel (DDP) training with gradient modulation.

Under DDP every process holds one shard of the batch. Gradient modulation
must see each task's gradient averaged over all processes, i.e. the gradient
of the whole batch: DDP averages what the main (SS) backward writes into
``.grad``, but the auxiliary (SE) gradient comes from ``torch.autograd.grad``,
which DDP does not hook, so it is averaged here (``all_reduce_mean``) before
the modulation. Decisions that change the control flow (skipping a batch)
must be taken by all processes together, or the next collective hangs
(``all_processes_agree``).

Without an initialised process group every function is the identity.

Authors
 * gmsep contributors 2026
"""

import torch
import torch.distributed as dist
from speechbrain.utils.distributed import is_distributed_initialized


def all_reduce_mean(tensors):
    """Averages every tensor over all processes, in one collective.

    The tensors are flattened into one bucket per (device, dtype), normally a
    single bucket, so a step costs one all-reduce whatever the number of
    parameter tensors.

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
    if not is_distributed_initialized() or dist.get_world_size() == 1:
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
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
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
    if not is_distributed_initialized():
        return flags.tolist()
    agreed = flags.to(torch.int32)
    dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
    return agreed.bool().tolist()
