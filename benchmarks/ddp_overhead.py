#!/usr/bin/env python3
"""Cost of averaging the auxiliary (SE) gradient across DDP processes.

Under DDP the main (SS) gradient is averaged by DDP's own hooks, overlapped
with the backward pass; the SE gradient comes from ``torch.autograd.grad``
and needs one more all-reduce (``gmsep.training.distributed.all_reduce_mean``, one
flattened bucket of the Encoder and EnhanceNet gradients). This benchmark
runs two gloo processes on CPU and times a full training step
(``NoiseRobustSeparationBrain.fit_batch``) with that all-reduce and without
it (the reduction replaced by the identity: a wrong update, the same work
otherwise), interleaved, and reports the ratio of the medians, plus the
all-reduce alone.

To run it:
> python benchmarks/ddp_overhead.py --configs tiny small --repeats 10

Authors
 * gmsep contributors 2026
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from unittest import mock

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from common import (
    CONFIGS,
    UNIFIED_HPARAMS,
    count_parameters,
    interleaved_times,
    load_hparams,
    make_batch,
    ratio_summary,
)
from gmsep.training.distributed import leave_process_group


def benchmark_config(config, seconds, repeats, folder):
    """Times the two steps in this process (all processes run it together).

    Returns
    -------
    dict
        The ratio summary, the all-reduce's median seconds and sizes.
    """
    import gmsep.training.brain
    from gmsep.training.brain import NoiseRobustSeparationBrain
    from gmsep.training.distributed import all_reduce_mean

    hparams = load_hparams(UNIFIED_HPARAMS, config, folder)
    brain = NoiseRobustSeparationBrain(
        modules=hparams["modules"],
        opt_class=hparams["optimizer"],
        hparams=hparams,
        run_opts={"device": "cpu", "distributed_backend": "gloo"},
        checkpointer=None,
    )
    brain.on_fit_start()
    brain.modules.train()
    batch = make_batch(hparams["num_spks"], seconds, seed=dist.get_rank())

    def without_reduce():
        with mock.patch.object(gmsep.training.brain, "all_reduce_mean", list):
            brain.fit_batch(batch)

    times = interleaved_times(
        {
            "with_aux_all_reduce": lambda: brain.fit_batch(batch),
            "without": without_reduce,
        },
        repeats,
    )
    shared = [torch.randn_like(p) for p in brain.shared_parameters()]
    reduce_times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        all_reduce_mean(shared)
        reduce_times.append(time.perf_counter() - start)
    return {
        "config": config,
        "params": count_parameters(hparams["separator"]),
        "shared_params": sum(p.numel() for p in shared),
        **ratio_summary(times, "with_aux_all_reduce", "without"),
        "all_reduce_s": statistics.median(reduce_times),
    }


def worker(rank, world_size, args, folder):
    """One DDP process: every configuration in turn."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    torch.set_num_threads(args.threads)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{folder}/rendezvous",
        rank=rank,
        world_size=world_size,
    )
    results = [
        benchmark_config(config, args.seconds, args.repeats, folder)
        for config in args.configs
    ]
    leave_process_group()
    if rank == 0:
        with open(os.path.join(folder, "results.json"), "w") as out:
            json.dump(results, out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--configs", nargs="+", default=["tiny", "small"], choices=CONFIGS
    )
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(
            worker,
            args=(args.processes, args, folder),
            nprocs=args.processes,
            join=True,
        )
        with open(os.path.join(folder, "results.json")) as fin:
            results = json.load(fin)
    print(
        f"{args.processes} gloo processes, {args.threads} thread(s) each, "
        f"{args.seconds} s items, median of {args.repeats} interleaved steps"
    )
    print("config  params   shared   step+reduce  step  ratio  all-reduce")
    for r in results:
        print(
            f"{r['config']:<7} {r['params'] / 1e6:5.2f} M  "
            f"{r['shared_params'] / 1e6:5.2f} M  "
            f"{r['numerator_s']:9.3f} s  {r['denominator_s']:.3f} s  "
            f"{r['ratio']:.3f}  {1e3 * r['all_reduce_s']:.2f} ms"
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    sys.exit(main())
