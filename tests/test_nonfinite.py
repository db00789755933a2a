"""Tests of non-finite and degenerate batches in training (gmsep.training.brain)."""

import os

import pytest
import torch
from gmsep.losses import EnhancedFeatureMSE, PITNegSISNR
from gmsep.model import SeparatorOutput
from gmsep.training.brain import NoiseRobustSeparationBrain, NonFiniteLossError
from gmsep.training.experiment import load_experiment
from speechbrain.dataio.batch import PaddedBatch
from tiny_config import REPO, TINY_MODEL

TINY = {
    **TINY_MODEL,
    "use_speedperturb": False,
}


# Tiny tensors (and two processes on two cores): more threads only contend.
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_brain(output_folder, **overrides):
    """A demo-recipe Brain with a tiny network, ready for ``fit_batch``."""
    overrides = {**TINY, "output_folder": str(output_folder), **overrides}
    hparams, _ = load_experiment(
        os.path.join(REPO, "hparams", "demo.yaml"), overrides
    )
    brain = NoiseRobustSeparationBrain(
        modules=hparams["modules"],
        opt_class=hparams["optimizer"],
        hparams=hparams,
        run_opts={"device": "cpu", "nonfinite_patience": 2},
    )
    brain.on_fit_start()
    return brain


def batch(name, length=400, scale=1.0, nan=False):
    """A one-item batch; ``scale`` 0 makes every signal silent."""
    generator = torch.Generator().manual_seed(len(name))
    s1, s2, noise = scale * torch.randn(3, length, generator=generator)
    mix = s1 + s2 + noise
    if nan:
        mix[length // 2] = float("nan")
    item = {"id": name, "mix_sig": mix, "s1_sig": s1, "s2_sig": s2}
    item.update(noise_sig=noise, clean_sig=s1 + s2)
    return PaddedBatch([item])


def parameters(brain):
    return [p.detach().clone() for p in brain.modules.parameters()]


def unchanged(before, brain):
    return all(
        torch.equal(a, b)
        for a, b in zip(before, parameters(brain), strict=True)
    )


def test_nonfinite_batches_are_skipped_then_named_in_the_error(tmp_path):
    brain = tiny_brain(tmp_path)
    before = parameters(brain)
    brain.fit_batch(batch("bad1", nan=True))
    brain.fit_batch(batch("bad2", nan=True))
    assert unchanged(before, brain)
    assert brain.skipped_batches["nonfinite"] == 2

    brain.fit_batch(batch("good"))  # a usable batch ends the streak
    assert not unchanged(before, brain)
    assert brain.nonfinite_streak == []

    brain.fit_batch(batch("bad3", nan=True))
    brain.fit_batch(batch("bad4", nan=True))
    with pytest.raises(
        NonFiniteLossError, match=r"nonfinite_patience=2"
    ) as err:
        brain.fit_batch(batch("bad5", nan=True))
    assert "['bad3'], ['bad4'], ['bad5']" in str(err.value)
    assert "bad1" not in str(err.value)


def test_a_nonfinite_gradient_with_a_finite_loss_skips_the_step(
    tmp_path, monkeypatch
):
    brain = tiny_brain(tmp_path, gm_mode="project")
    task_losses = brain.compute_task_losses

    def nan_gradient_aux(predictions, stage=None):
        """Adds sqrt(|E - E|) to the SE loss: 0, with a NaN gradient."""
        main_loss, aux_loss = task_losses(predictions)
        enhanced = predictions[0].enhanced_feats
        return main_loss, aux_loss + (enhanced - enhanced).abs().sum().sqrt()

    monkeypatch.setattr(brain, "compute_task_losses", nan_gradient_aux)
    before = parameters(brain)
    loss = brain.fit_batch(batch("nan-grad"))
    assert torch.isfinite(loss)
    assert unchanged(before, brain)
    assert brain.skipped_batches["nonfinite"] == 1
    assert all(p.grad is None for p in brain.modules.parameters())


def test_a_zero_auxiliary_gradient_leaves_the_main_update(tmp_path):
    """GM's fallback: a zero SE gradient adds nothing (no division by it)."""
    updates = []
    for mode in ("none", "project", "remedy"):
        brain = tiny_brain(tmp_path / mode, gm_mode=mode, se_weight=0.0)
        brain.fit_batch(batch("item"))
        updates.append(parameters(brain))
    for none, project, remedy in zip(*updates, strict=True):
        assert torch.isfinite(project).all()
        torch.testing.assert_close(project, none)
        torch.testing.assert_close(remedy, none)


@pytest.mark.parametrize("gm_mode", ["none", "project", "remedy"])
def test_a_silent_batch_trains_without_nan(tmp_path, gm_mode):
    brain = tiny_brain(tmp_path, gm_mode=gm_mode)
    loss = brain.fit_batch(batch("silence", scale=0.0))
    assert torch.isfinite(loss)
    assert brain.skipped_batches["nonfinite"] == 0
    assert all(torch.isfinite(p).all() for p in brain.modules.parameters())


@pytest.mark.parametrize(
    "silent", ["estimates", "sources", "both"], ids=lambda s: f"silent-{s}"
)
def test_ss_loss_on_silence_is_finite_with_finite_gradients(silent):
    estimates = torch.randn(2, 400, 2)
    sources = torch.randn(2, 400, 2)
    if silent in ("estimates", "both"):
        estimates = torch.zeros_like(estimates)
    if silent in ("sources", "both"):
        sources = torch.zeros_like(sources)
    estimates.requires_grad_(True)
    loss = PITNegSISNR()(SeparatorOutput(estimates), sources)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(estimates.grad).all()


@pytest.mark.parametrize("reduction", EnhancedFeatureMSE.REDUCTIONS)
def test_se_loss_on_silence_is_zero_with_zero_gradients(reduction):
    enhanced = torch.zeros(1, 16, 50, requires_grad=True)
    clean = torch.zeros(1, 16, 50, requires_grad=True)
    output = SeparatorOutput(torch.zeros(1, 400, 2), enhanced, clean)
    loss = EnhancedFeatureMSE(reduction)(output, None)
    loss.backward()
    assert loss == 0
    assert not enhanced.grad.any() and not clean.grad.any()
