"""Tests of data-parallel training (gmsep.training.distributed, the Brain under DDP).

Two CPU processes (gloo) with one item each must take the same step as one
process on the two-item batch. The two are mathematically the same update
only when both losses are means over the batch: the SS loss is a mean over
items, the SE loss is made one with ``se_reduction: mean`` (its default sum
would be twice as large on the two-item batch), and the items have equal
lengths (no padding). The optimiser is SGD so that the parameters compare
the gradients linearly (Adam's first step is about lr * sign(g), which
amplifies rounding where g is near zero). The SE weight is raised so that
the SE gradient dominates the shared parameters: an SE gradient left
unaveraged then changes their update by over 10 %, not by rounding.
"""

import os
import subprocess
import sys

import pytest
import speechbrain as sb
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from gmsep.training.brain import NoiseRobustSeparationBrain
from gmsep.training.distributed import (
    all_processes_agree,
    all_reduce_mean,
    leave_process_group,
    mean_over_processes,
)
from gmsep.training.experiment import load_experiment
from speechbrain.dataio.batch import PaddedBatch
from tiny_config import REPO, TINY_MODEL

MODES = ("none", "project", "remedy")
TINY = {
    **TINY_MODEL,
    "use_speedperturb": False,
    "se_reduction": "mean",
    "se_weight": 100.0,
}
LR = 0.5


# Tiny tensors (and two processes on two cores): more threads only contend.
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_brain(output_folder, gm_mode, distributed=False, accumulation=1):
    """A demo-recipe Brain with a tiny network, seeded (same weights in
    every process), SGD, ready for ``fit_batch``; ``accumulation``
    micro-batches per optimizer step."""
    overrides = {
        **TINY,
        "output_folder": str(output_folder),
        "gm_mode": gm_mode,
    }
    hparams, _ = load_experiment(
        os.path.join(REPO, "hparams", "demo.yaml"), overrides
    )
    run_opts = {"device": "cpu", "grad_accumulation_factor": accumulation}
    if distributed:
        run_opts["distributed_backend"] = "gloo"
    brain = NoiseRobustSeparationBrain(
        modules=hparams["modules"],
        opt_class=lambda params: torch.optim.SGD(params, lr=LR),
        hparams=hparams,
        run_opts=run_opts,
    )
    brain.on_fit_start()  # wraps in DDP, makes the optimiser
    return brain


def items(n_items, length=800, nan_item=None):
    """Equal-length random items; ``nan_item`` gets a NaN mixture."""
    generator = torch.Generator().manual_seed(0)
    examples = []
    for i in range(n_items):
        s1, s2, noise = torch.randn(3, length, generator=generator)
        mix = s1 + s2 + noise
        if i == nan_item:
            mix[length // 2] = float("nan")
        examples.append(
            {
                "id": f"item{i}",
                "mix_sig": mix,
                "s1_sig": s1,
                "s2_sig": s2,
                "noise_sig": noise,
                "clean_sig": s1 + s2,
            }
        )
    return examples


def parameters(brain):
    """A copy of the separator's parameters."""
    return {
        name: p.detach().clone()
        for name, p in brain.hparams.separator.named_parameters()
    }


def evaluate_three_items(brain, output_folder):
    """Runs the test stage on three items; returns what the Brain kept."""
    os.makedirs(output_folder, exist_ok=True)
    brain.hparams.output_folder = str(output_folder)
    brain.evaluate(
        items(3),
        progressbar=False,
        test_loader_kwargs={"collate_fn": PaddedBatch},
    )
    return {
        "share": [row["snt_id"] for row in brain.test_metrics],
        "averages": brain.test_averages,
        "csv": (output_folder / "test_results.csv").read_text()
        if (output_folder / "test_results.csv").exists()
        else None,
    }


def ddp_worker(rank, world_size, folder):
    """One process: a step per GM mode on its own item, then a step where
    one process's batch is non-finite (every process must skip it), then a
    sharded evaluation of three items (shares of 2 and 1)."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{folder}/rendezvous",
        rank=rank,
        world_size=world_size,
    )
    try:
        mine = items(world_size)[rank]
        for mode in MODES:
            brain = tiny_brain(folder / mode, mode, distributed=True)
            assert isinstance(
                brain.separator,
                torch.nn.parallel.DistributedDataParallel,
            )
            brain.fit_batch(PaddedBatch([mine]))
            torch.save(parameters(brain), folder / f"{mode}-rank{rank}.pt")

        # Two micro-batches per process, one step: the update of one
        # process on the four items.
        brain = tiny_brain(
            folder / "accumulation", "project", True, accumulation=2
        )
        for micro_batch in (2 * rank, 2 * rank + 1):
            brain.step += 1
            brain.fit_batch(PaddedBatch([items(2 * world_size)[micro_batch]]))
        torch.save(parameters(brain), folder / f"accumulation-rank{rank}.pt")

        brain = tiny_brain(folder / "skip", "project", distributed=True)
        before = parameters(brain)
        nan_batch = PaddedBatch([items(world_size, nan_item=1)[rank]])
        brain.fit_batch(nan_batch)
        skipped = parameters(brain)
        brain.fit_batch(PaddedBatch([mine]))  # DDP still in a sane state
        torch.save(
            {
                "unchanged": all(
                    torch.equal(before[k], skipped[k]) for k in before
                ),
                "skipped": brain.skipped_batches["nonfinite"],
                "after": parameters(brain),
            },
            folder / f"skip-rank{rank}.pt",
        )

        brain = tiny_brain(folder / "eval", "project", distributed=True)
        evaluation = evaluate_three_items(brain, folder / "eval")
        evaluation["mean"] = mean_over_processes(float(rank + 1), rank + 1)
        # The train loss: process r's average over r + 1 steps is r + 1.
        brain.step = rank + 1
        brain.on_stage_end(sb.Stage.TRAIN, float(rank + 1), epoch=1)
        evaluation["train_loss"] = brain.train_stats["si-snr"]
        torch.save(evaluation, folder / f"eval-rank{rank}.pt")
    except BaseException:
        dist.destroy_process_group()  # the peer may be gone: no collective
        raise
    leave_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    """Runs the two-process workers once for all tests of this module."""
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(ddp_worker, args=(2, folder), nprocs=2, join=True)
    return folder


@pytest.mark.parametrize("mode", MODES)
def test_two_processes_step_like_one_process_on_the_whole_batch(
    ddp_results, mode, tmp_path
):
    reference = tiny_brain(tmp_path, mode)
    initial = parameters(reference)
    reference.fit_batch(PaddedBatch(items(2)))
    expected = parameters(reference)
    ranks = [torch.load(ddp_results / f"{mode}-rank{r}.pt") for r in (0, 1)]
    for name in expected:
        torch.testing.assert_close(ranks[0][name], ranks[1][name])
        update = expected[name] - initial[name]
        assert update.norm() > 0, f"{name} did not change"
        error = (ranks[0][name] - expected[name]).norm() / update.norm()
        assert error < 1e-4, f"{name}: update off by {error:.1e} (relative)"


def test_accumulation_across_processes_steps_like_the_whole_batch(
    ddp_results, tmp_path
):
    """2 processes x 2 micro-batches of 1 item = 1 process, 1 batch of 4:
    the accumulated SE gradient is averaged once, GM combines once."""
    reference = tiny_brain(tmp_path, "project")
    initial = parameters(reference)
    reference.fit_batch(PaddedBatch(items(4)))
    expected = parameters(reference)
    ranks = [
        torch.load(ddp_results / f"accumulation-rank{r}.pt") for r in (0, 1)
    ]
    for name in expected:
        torch.testing.assert_close(ranks[0][name], ranks[1][name])
        update = expected[name] - initial[name]
        error = (ranks[0][name] - expected[name]).norm() / update.norm()
        assert error < 1e-4, f"{name}: update off by {error:.1e} (relative)"


def test_a_batch_unusable_on_one_process_is_skipped_by_all(ddp_results):
    ranks = [torch.load(ddp_results / f"skip-rank{r}.pt") for r in (0, 1)]
    for result in ranks:
        assert result["unchanged"]
        assert result["skipped"] == 1
    for name, value in ranks[0]["after"].items():
        torch.testing.assert_close(value, ranks[1]["after"][name])


def test_evaluation_is_sharded_and_gathered(ddp_results, tmp_path):
    ranks = [torch.load(ddp_results / f"eval-rank{r}.pt") for r in (0, 1)]
    # each item evaluated once, by one process
    assert ranks[0]["share"] == ["item0", "item2"]
    assert ranks[1]["share"] == ["item1"]
    # the count-weighted mean of the processes' means: (1 * 1 + 2 * 2) / 3
    assert ranks[0]["mean"] == ranks[1]["mean"] == pytest.approx(5 / 3)
    # the train loss too, weighted by each process's steps
    for result in ranks:
        assert result["train_loss"] == pytest.approx(5 / 3)
    # whole-set figures in every process; the CSV as one process writes it
    reference = evaluate_three_items(tiny_brain(tmp_path, "project"), tmp_path)
    assert ranks[0]["csv"].splitlines()[0] == reference["csv"].splitlines()[0]
    ids = [row.split(",")[0] for row in ranks[0]["csv"].splitlines()[1:]]
    assert ids == ["item0", "item1", "item2", "avg"]
    for result in ranks:
        for name, value in reference["averages"].items():
            assert result["averages"][name] == pytest.approx(
                value, rel=1e-5, nan_ok=True
            )


def test_collectives_are_the_identity_in_one_process():
    grads = [torch.randn(3, 2), None, torch.randn(5)]
    averaged = all_reduce_mean(grads)
    assert averaged[1] is None
    assert torch.equal(averaged[0], grads[0])
    assert all_processes_agree(torch.tensor([True, False])) == [True, False]


LEAVE_SCRIPT = """
import sys, torch, torch.distributed as dist
from gmsep.training.distributed import leave_process_group
dist.init_process_group(
    "gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1
)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
model(torch.ones(1, 2)).sum().backward()
dist.all_gather_object([None], ["a row"])
leave_process_group()
print("initialised after:", dist.is_initialized())
"""


def test_leave_process_group_destroys_the_group(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", LEAVE_SCRIPT, str(tmp_path / "rendezvous")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "initialised after: False" in run.stdout


def test_torchrun_training_writes_one_complete_test_results(tmp_path):
    """A full demo run with two gloo processes: both train, one writes."""
    from recipes.demo_corpus import generate_demo_corpus

    generate_demo_corpus(
        tmp_path / "corpus",
        n_mixtures={"train-360": 4, "dev": 1, "test": 3},
        min_duration=0.6,
        max_duration=0.8,
    )
    output = tmp_path / "run"
    overrides = [f"--{k}={v}" for k, v in TINY.items()]
    command = [
        *(sys.executable, "-m", "torch.distributed.run"),
        *("--standalone", "--nproc_per_node=2"),
        *("train.py", "hparams/demo.yaml"),
        f"--data_folder={tmp_path / 'corpus' / 'Libri2Mix'}",
        f"--output_folder={output}",
        *("--N_epochs=1", "--training_signal_len=2000", "--batch_size=1"),
        *("--distributed_backend=gloo", "--noprogressbar", *overrides),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # written once, atomically: no temporary file is left beside it
    assert (output / "hyperparams.yaml").read_text().startswith("# Generated")
    assert not [p.name for p in output.iterdir() if p.name.startswith(".")]
    rows = (output / "test_results.csv").read_text().splitlines()
    ids = [row.split(",")[0] for row in rows[1:]]
    assert len(ids) == 4 and ids[-1] == "avg"
    assert len(set(ids[:-1])) == 3
    log = (output / "train_log.txt").read_text()
    # Written once: one epoch line, one test line.
    assert log.count("epoch: 1") == 1 and log.count("Epoch loaded") == 1
    # Each process trained on its half of the 4 training items.
    assert "train steps: 2" in log
