"""Tests of the SS and SE objectives and their multi-task list (gmsep.losses)."""

import itertools

import pytest
import torch
from gmsep.losses import (
    EnhancedFeatureMSE,
    Objective,
    PITNegSISNR,
    evaluation_objectives,
    weighted_objectives,
)
from gmsep.model import SeparatorOutput


def si_snr(estimate, target):
    """Reference SI-SNR (dB) of one signal pair, written from its definition."""
    estimate, target = estimate - estimate.mean(), target - target.mean()
    projection = (estimate @ target) / (target @ target) * target
    noise = estimate - projection
    return 10 * torch.log10((projection @ projection) / (noise @ noise))


def reference_pit_loss(estimates, sources):
    """Best-permutation mean negative SI-SNR of one item (T, S)."""
    num_spks = sources.shape[-1]
    return min(
        -sum(si_snr(estimates[:, p[i]], sources[:, i]) for i in range(num_spks))
        / num_spks
        for p in itertools.permutations(range(num_spks))
    )


def noisy_copies(sources, noise_levels):
    """Estimates whose SI-SNR is set by the noise level of each item."""
    torch.manual_seed(1)
    noise = torch.randn_like(sources)
    levels = torch.tensor(noise_levels).view(-1, 1, 1)
    return sources + levels * noise


@pytest.mark.parametrize("num_spks", [2, 3])
def test_pit_per_item_matches_the_definition_and_ignores_order(num_spks):
    torch.manual_seed(0)
    sources = torch.randn(3, 400, num_spks)
    estimates = noisy_copies(sources, [0.3, 1.0, 3.0])
    loss = PITNegSISNR(threshold=None)
    per_item = loss.per_item(estimates, sources)
    expected = torch.stack(
        [reference_pit_loss(estimates[b], sources[b]) for b in range(3)]
    )
    torch.testing.assert_close(per_item, expected, rtol=1e-4, atol=1e-4)
    reversed_order = estimates.flip(-1)
    torch.testing.assert_close(loss.per_item(reversed_order, sources), per_item)
    assert loss(SeparatorOutput(reversed_order), sources) == pytest.approx(
        per_item.mean().item(), abs=1e-4
    )


def test_threshold_drops_items_above_it_from_the_mean():
    torch.manual_seed(0)
    sources = torch.randn(3, 400, 2)
    # about 40 dB, 10 dB and 0 dB
    estimates = noisy_copies(sources, [0.01, 0.3, 1.0]).requires_grad_()
    per_item = PITNegSISNR(threshold=None).per_item(estimates, sources)
    assert per_item[0] < -30 < per_item[1]
    loss = PITNegSISNR(threshold=30.0)(SeparatorOutput(estimates), sources)
    assert loss.item() == pytest.approx(per_item[1:].mean().item(), abs=1e-5)
    loss.backward()
    assert torch.all(estimates.grad[0] == 0)
    assert torch.all(estimates.grad[1:].abs().sum(dim=(1, 2)) > 0)


def test_threshold_with_every_item_dropped_gives_minus_threshold_and_no_gradient():
    torch.manual_seed(0)
    sources = torch.randn(2, 400, 2)
    estimates = noisy_copies(sources, [0.01, 0.01]).requires_grad_()
    loss = PITNegSISNR(threshold=30.0)(SeparatorOutput(estimates), sources)
    assert loss.item() == -30.0
    loss.backward()
    assert torch.all(estimates.grad == 0)


def test_threshold_does_not_hide_a_non_finite_item():
    sources = torch.randn(2, 400, 2)
    estimates = sources.clone()
    estimates[1, 0, 0] = float("nan")
    loss = PITNegSISNR(threshold=30.0)(SeparatorOutput(estimates), sources)
    assert not torch.isfinite(loss)


def test_pit_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"same shape \(B, T, S\)"):
        PITNegSISNR().per_item(torch.randn(2, 400, 2), torch.randn(2, 401, 2))


def test_se_loss_sum_is_mean_times_the_number_of_elements():
    enhanced, clean = torch.randn(2, 8, 13), torch.randn(2, 8, 13)
    output = SeparatorOutput(torch.zeros(2, 100, 2), enhanced, clean)
    total = EnhancedFeatureMSE()(output, None)
    mean = EnhancedFeatureMSE(reduction="mean")(output, None)
    torch.testing.assert_close(total, ((enhanced - clean) ** 2).sum())
    torch.testing.assert_close(total, mean * enhanced.numel())


def test_se_loss_detach_switch_stops_the_target_branch_gradient():
    # E = Encoder(noisy) * mask and the target Encoder(clean) share the encoder
    torch.manual_seed(0)
    encoder = torch.nn.Conv1d(1, 8, 4, stride=2, bias=False)
    noisy, clean = torch.randn(2, 1, 64), torch.randn(2, 1, 64)
    mask = torch.rand(2, 8, 31)

    def encoder_grad(criterion, through):
        """Gradient on the encoder of the SE loss; ``through`` selects the
        branches the gradient may use ("both", "enhanced", "target")."""
        enhanced, target = encoder(noisy) * mask, encoder(clean)
        if through == "enhanced":
            target = target.detach()
        if through == "target":
            enhanced = enhanced.detach()
        output = SeparatorOutput(torch.zeros(2, 64, 2), enhanced, target)
        return torch.autograd.grad(criterion(output, None), encoder.weight)[0]

    faithful, detached = (
        EnhancedFeatureMSE(),
        EnhancedFeatureMSE(detach_target=True),
    )
    through_target = encoder_grad(faithful, "target")
    assert through_target.abs().sum() > 0
    torch.testing.assert_close(
        encoder_grad(detached, "both"), encoder_grad(faithful, "enhanced")
    )
    torch.testing.assert_close(
        encoder_grad(faithful, "both"),
        encoder_grad(detached, "both") + through_target,
    )


def test_se_loss_without_features_raises():
    output = SeparatorOutput(
        torch.zeros(1, 100, 2), torch.zeros(1, 8, 13), None
    )
    with pytest.raises(
        ValueError, match="enhancer and be called with clean_mix"
    ):
        EnhancedFeatureMSE()(output, None)
    with pytest.raises(ValueError, match="reduction='max'"):
        EnhancedFeatureMSE(reduction="max")


def test_weighted_objectives_split_main_and_auxiliary():
    torch.manual_seed(0)
    sources = torch.randn(2, 400, 2)
    output = SeparatorOutput(
        noisy_copies(sources, [0.5, 1.0]),
        torch.randn(2, 8, 13),
        torch.randn(2, 8, 13),
    )
    ss, se = PITNegSISNR(), EnhancedFeatureMSE()
    objectives = [
        Objective("ss", ss),
        Objective("se", se, weight=0.1, auxiliary=True),
    ]
    main, aux, values = weighted_objectives(objectives, output, sources)
    torch.testing.assert_close(main, ss(output, sources))
    torch.testing.assert_close(aux, 0.1 * se(output, sources))
    torch.testing.assert_close(values["se"], se(output, sources))
    assert set(values) == {"ss", "se"}

    main_only, no_aux, _ = weighted_objectives(objectives[:1], output, sources)
    assert no_aux is None
    torch.testing.assert_close(main_only, main)

    two_main = [Objective("a", ss, weight=2.0), Objective("b", ss, weight=0.5)]
    doubled, _, _ = weighted_objectives(two_main, output, sources)
    torch.testing.assert_close(doubled, 2.5 * main)

    with pytest.raises(ValueError, match="at least one main"):
        weighted_objectives(objectives[1:], output, sources)


def test_evaluation_objectives_drop_the_threshold_and_the_auxiliary_task():
    objectives = [
        Objective("ss", PITNegSISNR(threshold=30.0), weight=2.0),
        Objective("se", EnhancedFeatureMSE(), weight=0.1, auxiliary=True),
    ]
    evaluated = evaluation_objectives(objectives)
    assert [(o.name, o.weight, o.auxiliary) for o in evaluated] == [
        ("ss", 2.0, False)
    ]
    assert evaluated[0].criterion.threshold is None
    assert objectives[0].criterion.threshold == 30.0
