"""Tests of resuming a killed training run (gmsep.training.checkpointing, train.py)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from gmsep.training.checkpointing import STAGING_PREFIX, AtomicCheckpointer
from tiny_config import REPO, TINY_MODEL

N_TRAIN = 12
TINY = TINY_MODEL


class Exploding:
    """A recoverable whose save dies half-way, like a killed process."""

    def __init__(self):
        self.fail = False

    def save(self, path):
        path.write_text("half")
        if self.fail:
            raise RuntimeError("killed while saving")

    def load(self, path, end_of_epoch):
        pass


def make_checkpointer(folder, model, exploding):
    return AtomicCheckpointer(
        folder,
        recoverables={"model": model, "exploding": exploding},
        custom_save_hooks={"exploding": Exploding.save},
        custom_load_hooks={"exploding": Exploding.load},
    )


def test_a_save_killed_half_way_leaves_the_previous_checkpoint_latest(
    tmp_path,
):
    model, exploding = torch.nn.Linear(2, 2), Exploding()
    checkpointer = make_checkpointer(tmp_path, model, exploding)
    complete = checkpointer.save_checkpoint(meta={"which": "complete"})
    exploding.fail = True
    with pytest.raises(RuntimeError, match="killed"):
        checkpointer.save_checkpoint(meta={"which": "broken"})
    (staging,) = tmp_path.glob(STAGING_PREFIX + "*/CKPT+*")
    assert (staging / "model.ckpt").exists()  # the half-written checkpoint

    # A new process recovers the complete one, ignoring the broken one.
    recovered = torch.nn.Linear(2, 2)
    checkpointer = make_checkpointer(tmp_path, recovered, Exploding())
    assert checkpointer.recover_if_possible().path == complete.path
    torch.testing.assert_close(recovered.weight, model.weight)
    # The next save clears what the killed one left.
    checkpointer.save_checkpoint()
    assert not list(tmp_path.glob(STAGING_PREFIX + "*"))
    assert len(checkpointer.list_checkpoints()) == 2


def test_a_half_written_checkpoint_directory_is_ignored(tmp_path):
    model = torch.nn.Linear(2, 2)
    checkpointer = AtomicCheckpointer(tmp_path, {"model": model})
    complete = checkpointer.save_checkpoint()
    # What a kill during a save leaves: a staging directory with a meta
    # file, newer than the complete checkpoint, and a truncated model file.
    staging = tmp_path / f"{STAGING_PREFIX}CKPT+2999-01-01+00-00-00+00"
    staging.mkdir()
    (staging / "CKPT.yaml").write_text("end-of-epoch: false\nunixtime: 9e9\n")
    (staging / "model.ckpt").write_bytes(b"PK\x03")
    assert checkpointer.list_checkpoints() == [complete]
    assert checkpointer.recover_if_possible().path == complete.path


def test_replacing_a_named_checkpoint_keeps_one_complete_copy(tmp_path):
    model = torch.nn.Linear(2, 2)
    checkpointer = AtomicCheckpointer(tmp_path, {"model": model})
    checkpointer.save_checkpoint(name="best", meta={"n": 1})
    saved = checkpointer.save_checkpoint(name="best", meta={"n": 2})
    assert [c.meta["n"] for c in checkpointer.list_checkpoints()] == [2]
    assert sorted(p.name for p in saved.path.iterdir()) == [
        "CKPT.yaml",
        "model.ckpt",
    ]


def train_command(corpus, output):
    overrides = [f"--{k}={v}" for k, v in TINY.items()]
    return [
        *(sys.executable, "train.py", "hparams/demo.yaml"),
        f"--data_folder={corpus}",
        f"--output_folder={output}",
        *("--N_epochs=2", "--training_signal_len=2000", "--batch_size=1"),
        *("--ckpt_interval_minutes=0", "--ckpt_interval_steps=2"),
        *("--noprogressbar", *overrides),
    ]


def intra_epoch_checkpoints(save_folder):
    """The complete intra-epoch checkpoints, oldest first."""
    found = []
    for meta_file in save_folder.glob("CKPT+*/CKPT.yaml"):
        meta = yaml.safe_load(meta_file.read_text())
        if not meta["end-of-epoch"]:
            found.append((meta["unixtime"], meta_file.parent))
    return [path for _, path in sorted(found)]


def test_a_run_killed_mid_epoch_resumes_where_it_was(tmp_path):
    from recipes.demo_corpus import generate_demo_corpus

    generate_demo_corpus(
        tmp_path / "corpus",
        n_mixtures={"train-360": N_TRAIN, "dev": 1, "test": 2},
        min_duration=0.6,
        max_duration=0.8,
    )
    output = tmp_path / "run"
    command = train_command(tmp_path / "corpus" / "Libri2Mix", output)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

    killed = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not intra_epoch_checkpoints(output / "save"):
        assert killed.poll() is None, "the run ended before a checkpoint"
        assert time.time() < deadline, "no intra-epoch checkpoint appeared"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (output / "train_log.txt").exists()  # died inside epoch 1
    # A kill between a save and the deletion of the previous one leaves two.
    latest = intra_epoch_checkpoints(output / "save")[-1]
    brain_state = yaml.safe_load((latest / "brain.ckpt").read_text())
    steps_before_kill = brain_state["step"]
    assert 2 <= steps_before_kill < N_TRAIN

    resumed = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = (output / "log.txt").read_text()
    assert f"Loading a checkpoint from {latest}" in log

    train_log = (output / "train_log.txt").read_text().splitlines()
    epochs = [line for line in train_log if line.startswith("epoch:")]
    assert [line.split(",")[0] for line in epochs] == ["epoch: 1", "epoch: 2"]
    # The resumed epoch 1 does only the batches the killed run had not done.
    assert f"train steps: {N_TRAIN - steps_before_kill}," in epochs[0]
    assert f"train steps: {N_TRAIN}," in epochs[1]
    assert (output / "test_results.csv").exists()
    print(
        f"killed after {steps_before_kill} of {N_TRAIN} steps, resumed from "
        f"{latest.name}; epoch 1 completed with "
        f"{N_TRAIN - steps_before_kill} more steps"
    )
