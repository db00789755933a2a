"""Tests of the training options of the Brain (gmsep.training.brain): the
clean condition, the evaluation losses and gradient accumulation."""

import os

import pytest
import speechbrain as sb
import torch
from gmsep.losses import PITNegSISNR
from gmsep.model import SeparatorOutput
from gmsep.training.brain import NoiseRobustSeparationBrain
from gmsep.training.config_checks import ConfigError
from gmsep.training.experiment import load_experiment
from speechbrain.dataio.batch import PaddedBatch
from test_nonfinite import batch, tiny_brain
from tiny_config import REPO, TINY_MODEL

DEMO = os.path.join(REPO, "hparams", "demo.yaml")


# Tiny tensors (and two processes on two cores): more threads only contend.
pytestmark = pytest.mark.usefixtures("one_thread")


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


def accumulating_brain(output_folder, factor, gm_mode, **overrides):
    """The tiny demo Brain in float64 with plain SGD, accumulating `factor`
    micro-batches per step."""
    overrides = {
        **TINY_MODEL,
        "use_speedperturb": False,
        "gm_mode": gm_mode,
        "output_folder": str(output_folder),
        **overrides,
    }
    hparams, _ = load_experiment(DEMO, overrides)
    hparams["separator"].double()
    brain = NoiseRobustSeparationBrain(
        modules=hparams["modules"],
        opt_class=lambda params: torch.optim.SGD(params, lr=0.05),
        hparams=hparams,
        run_opts={"device": "cpu", "grad_accumulation_factor": factor},
    )
    brain.on_fit_start()
    return brain


def items(names, length=400):
    """Equal-length float64 items (a batch's loss is a mean over them)."""
    made = []
    for name in names:
        generator = torch.Generator().manual_seed(len(name) * 7 + ord(name[0]))
        s1, s2, noise = torch.randn(
            3, length, generator=generator, dtype=torch.float64
        )
        made.append(
            {
                "id": name,
                "mix_sig": s1 + s2 + 0.5 * noise,
                "s1_sig": s1,
                "s2_sig": s2,
                "noise_sig": 0.5 * noise,
                "clean_sig": s1 + s2,
            }
        )
    return made


def train(brain, batches):
    """Feeds batches to fit_batch as Brain.fit does."""
    for micro_batch in batches:
        brain.step += 1
        brain.fit_batch(PaddedBatch(micro_batch))
    return [p.detach().clone() for p in brain.modules.parameters()]


@pytest.mark.parametrize("gm_mode", ["none", "project", "remedy"])
@pytest.mark.parametrize("se_reduction", ["sum", "mean"])
def test_accumulated_micro_batches_give_the_large_batch_update(
    tmp_path, gm_mode, se_reduction
):
    """k = 2 micro-batches of 1 item, then one more window, give the
    parameters of two batches of 2 items: each task's gradient is
    accumulated on its own and GM combines the sums once per step."""
    data = items(["a", "bb", "ccc", "dddd"])
    large = accumulating_brain(
        tmp_path / "large", 1, gm_mode, se_reduction=se_reduction
    )
    expected = train(large, [data[:2], data[2:]])
    small = accumulating_brain(
        tmp_path / "small", 2, gm_mode, se_reduction=se_reduction
    )
    initial = [p.detach().clone() for p in small.modules.parameters()]
    after_one = train(small, [data[:1]])
    # No step in the middle of a window.
    assert all(map(torch.equal, initial, after_one))
    got = train(small, [data[1:2], data[2:3], data[3:4]])
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12)
    assert not all(map(torch.equal, initial, got))
    if gm_mode != "none":
        # One modulation per optimizer step, on the accumulated gradients.
        gm = small.hparams.gradient_modulation
        assert gm.stats()["steps"] == 2
        assert large.hparams.gradient_modulation.stats()["steps"] == 2


def test_an_unusable_micro_batch_voids_its_window(tmp_path):
    brain = accumulating_brain(tmp_path, 2, "project", loss_upper_lim=-1e9)
    before = [p.detach().clone() for p in brain.modules.parameters()]
    after = train(brain, [items(["a"]), items(["bb"])])
    assert all(map(torch.equal, before, after))
    assert brain.skipped_batches["loss_upper_lim"] == 2
    assert all(p.grad is None for p in brain.modules.parameters())
    assert brain.aux_grads is None


def test_accumulation_refuses_a_criterion_without_batch_reduction(tmp_path):
    brain = accumulating_brain(tmp_path, 2, "project")

    class Criterion(torch.nn.Module):
        def forward(self, output, sources):
            return output.est_sources.sum()

    brain.hparams.objectives[0].criterion = Criterion()
    with pytest.raises(ConfigError, match="grad_accumulation_factor: 2"):
        brain.on_fit_start()


def test_accumulation_with_a_loss_scaler_gives_the_large_batch_update(
    tmp_path,
):
    """The fp16 path: both tasks' losses scaled by the GradScaler in every
    micro-batch, unscaled once before clipping and the step (GM is
    scale-free). A CPU GradScaler stands in for CUDA's."""
    data = items(["a", "bb"])
    params = []
    for factor, batches in ((1, [data]), (2, [data[:1], data[1:]])):
        brain = accumulating_brain(tmp_path / str(factor), factor, "project")
        brain.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        assert brain.scaler.is_enabled()
        params.append(train(brain, batches))
        assert brain.scaler.get_scale() == 2.0**10  # finite: no backoff
    for got, expected in zip(*params[::-1], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


def test_linear_se_weight_decay_falls_to_zero_over_the_training(tmp_path):
    brain = tiny_brain(tmp_path, se_weight_decay="linear", N_epochs=2)
    brain.batches_per_epoch = 4
    counter = brain.hparams.epoch_counter
    factors = []
    for epoch in (1, 2):
        counter.current = epoch
        for step in range(1, 5):
            brain.step = step
            factors.append(brain.se_weight_factor())
    assert factors == [1 - i / 8 for i in range(8)]
    # the SE loss is scaled, the SS loss is not
    predictions = brain.compute_forward(batch("item"), sb.Stage.TRAIN)
    brain.step = 1  # epoch 2, step 1: half way
    main, aux = brain.compute_task_losses(predictions)
    constant = tiny_brain(tmp_path / "constant")
    main_c, aux_c = constant.compute_task_losses(predictions)
    torch.testing.assert_close(main, main_c)
    torch.testing.assert_close(aux, 0.5 * aux_c)
    assert constant.se_weight_factor() == 1.0


def task_gradients(brain, data):
    """The combined gradient of every module's parameters for one batch."""
    brain.zero_grad(set_to_none=True)
    predictions = brain.compute_forward(PaddedBatch(data), sb.Stage.TRAIN)
    brain._backward(*brain.compute_task_losses(predictions))
    return {
        name: [p.grad.clone() for p in module.parameters()]
        for name, module in brain.modules.items()
    }


def test_gm_on_the_enhancer_only_gives_the_encoder_the_plain_sum(tmp_path):
    """gm_params: enhancer: the Encoder's gradient is that of multi-task
    (gm_mode none), every other tensor's that of the paper's GM (it works
    tensor by tensor). This item's gradients conflict on the Encoder."""
    data = items(["hello"])
    grads = {
        name: task_gradients(
            accumulating_brain(tmp_path / name, 1, mode, gm_params=params),
            data,
        )
        for name, mode, params in (
            ("enhancer_only", "project", "enhancer"),
            ("project", "project", "encoder_enhancer"),
            ("none", "none", "encoder_enhancer"),
        )
    }
    assert any(
        not torch.allclose(a, b)
        for a, b in zip(
            grads["project"]["encoder"], grads["none"]["encoder"], strict=True
        )
    ), "no conflict on the encoder: the test would not tell the modes apart"
    for module, expected in (
        ("encoder", "none"),
        ("enhancer", "project"),
        ("masknet", "project"),
        ("decoder", "project"),
    ):
        for got, want in zip(
            grads["enhancer_only"][module], grads[expected][module], strict=True
        ):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_gm_on_the_enhancer_only_is_refused_with_the_published_update(tmp_path):
    from gmsep.training.config_checks import check_config

    hparams, _ = load_experiment(
        DEMO,
        {
            **TINY_MODEL,
            "gm_mode": "published",
            "gm_params": "enhancer",
            "output_folder": str(tmp_path),
        },
    )
    with pytest.raises(ConfigError, match="gm_params: enhancer needs the SE"):
        check_config(hparams, {"device": "cpu"})
