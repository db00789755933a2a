"""Tests of the training options of the Brain (gmsep.training.brain): the
clean condition, the evaluation losses and gradient accumulation."""

import pytest
import speechbrain as sb
import torch
from gmsep.losses import PITNegSISNR
from gmsep.model import SeparatorOutput
from test_nonfinite import batch, tiny_brain


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("condition", ["noisy", "clean"])
def test_the_speed_perturbed_mixture_follows_the_condition(tmp_path, condition):
    """Under condition clean the rebuilt training mixture has no noise, as
    the validation and test inputs (mix_clean)."""
    brain = tiny_brain(tmp_path, condition=condition, use_speedperturb=True)
    item = batch("item")
    _, sources, mix = brain.compute_forward(item, sb.Stage.TRAIN)
    clean_mix = sources.sum(-1)  # B, T'
    if condition == "clean":
        torch.testing.assert_close(mix, clean_mix, rtol=0, atol=0)
    else:
        noise = item.noise_sig.data[:, : mix.shape[1]]
        torch.testing.assert_close(mix, clean_mix + noise, rtol=0, atol=0)


def near_perfect(sources):
    """Network output 40 dB SI-SNR from the sources: above the 30 dB threshold."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(sources.shape, generator=generator)
    return SeparatorOutput(sources + 0.01 * sources.std() * noise)


@pytest.mark.parametrize("stage", [sb.Stage.VALID, sb.Stage.TEST])
def test_evaluation_losses_have_no_threshold(tmp_path, stage):
    """Outside training the SS loss scores every item, solved ones included
    (the 30 dB threshold is a training device); training keeps it."""
    brain = tiny_brain(tmp_path, threshold=30)
    sources = torch.randn(2, 400, 2, generator=torch.Generator().manual_seed(1))
    output = near_perfect(sources)
    predictions = (output, sources, sources.sum(-1))
    per_item = PITNegSISNR(threshold=None).per_item(output.est_sources, sources)
    assert bool((per_item < -30).all())

    main_loss, aux_loss = brain.compute_task_losses(predictions, stage)
    assert aux_loss is None
    torch.testing.assert_close(main_loss, per_item.mean())
    loss = brain.compute_objectives(predictions, None, stage)
    torch.testing.assert_close(loss, per_item.mean())

    ss = brain.hparams.objectives[0].criterion
    assert ss.threshold == 30  # the training objective is unchanged
    assert float(ss(output, sources)) == -30.0
