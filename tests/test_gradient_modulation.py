"""Tests of gradient modulation (gmsep.gradient_modulation)."""

import math
import os
import subprocess
import sys

import gmsep
import pytest
import torch
from gmsep.gradient_modulation import GradientModulation
from gmsep.losses import (
    weighted_objectives,
)
from tiny_config import OBJECTIVES, tiny_separator

# one backward of a sum vs two separate ones differ by rounding
TOL = {"rtol": 1e-4, "atol": 1e-6}

FINITE_CASES = [
    # (main, aux): conflict, agreement, orthogonal, zeros, anti-parallel
    ([1.0, 0.0], [-1.0, 1.0]),
    ([1.0, 2.0], [0.5, 0.1]),
    ([1.0, 0.0], [0.0, 3.0]),
    ([0.0, 0.0], [-1.0, 1.0]),
    ([1.0, 2.0], [0.0, 0.0]),
    ([0.0, 0.0], [0.0, 0.0]),
    ([1.0, 2.0], [-2.0, -4.0]),
    ([1e-3, 0.0], [-30.0, 40.0]),
]


def combine_one(mode, main, aux):
    gm = GradientModulation(mode)
    return gm.combine([torch.as_tensor(main)], [torch.as_tensor(aux)])[0]


def projected_reference(main, aux):
    """The paper's GM on one flattened tensor, written from its definition."""
    dot = torch.dot(aux.flatten(), main.flatten())
    if dot < 0:
        aux = aux - dot / main.flatten().square().sum() * main
    return main + aux


def test_unknown_mode_is_rejected_with_the_valid_ones():
    with pytest.raises(
        ValueError, match=r"'pcgrad'.*'none', 'project', 'remedy'"
    ):
        GradientModulation("pcgrad")
    with pytest.raises(ValueError, match="remedy_k"):
        GradientModulation("remedy", remedy_k=0)


def test_project_removes_the_conflicting_component_only():
    torch.manual_seed(0)
    main = torch.randn(50)
    aux = -0.5 * main + torch.randn(50)
    assert torch.dot(aux, main) < 0
    result = combine_one("project", main, aux)
    modulated_aux = result - main
    assert torch.dot(modulated_aux, main).abs() < 1e-4
    # only the component along main changed
    residual = aux - modulated_aux
    torch.testing.assert_close(
        residual, torch.dot(residual, main) / main.square().sum() * main
    )
    torch.testing.assert_close(result, projected_reference(main, aux))


@pytest.mark.parametrize("mode", ["project", "remedy"])
def test_without_conflict_nothing_changes(mode):
    torch.manual_seed(0)
    main = torch.randn(4, 5)
    aux = 0.3 * main + 0.1 * torch.randn(4, 5)  # small and agreeing
    assert torch.dot(aux.flatten(), main.flatten()) > 0
    torch.testing.assert_close(combine_one(mode, main, aux), main + aux)


@pytest.mark.parametrize("mode", GradientModulation.MODES)
@pytest.mark.parametrize("main,aux", FINITE_CASES)
def test_finite_gradients_give_finite_results(mode, main, aux):
    result = combine_one(mode, main, aux)
    assert torch.isfinite(result).all()
    if not any(main) and mode != "published":
        # zero main gradient: no conflict, the aux gradient as is
        torch.testing.assert_close(result, torch.tensor(aux))


@pytest.mark.parametrize("mode", GradientModulation.MODES)
@pytest.mark.parametrize(
    "main,aux",
    [
        ([1.0, float("nan")], [-1.0, 1.0]),
        ([1.0, 0.0], [float("nan"), 1.0]),
        ([float("inf"), 0.0], [-1.0, 1.0]),
        ([1.0, 0.0], [-1.0, float("inf")]),
    ],
)
def test_non_finite_gradients_stay_non_finite(mode, main, aux):
    result = combine_one(mode, main, aux)
    if mode == "published" and all(map(math.isfinite, main)):
        assert torch.isfinite(result).all()  # the aux gradient is never used
    else:
        assert not torch.isfinite(result).all()


def test_missing_aux_gradient_keeps_the_main_gradient():
    main = [torch.randn(3), torch.randn(2, 2)]
    aux = [None, -main[1]]
    combined = GradientModulation().combine(main, aux)
    assert combined[0] is main[0]
    torch.testing.assert_close(
        combined[1], main[1]
    )  # anti-parallel: aux removed


def test_combine_rejects_mismatched_lists_and_shapes():
    gm = GradientModulation()
    with pytest.raises(ValueError, match="1 main and 2 auxiliary"):
        gm.combine([torch.ones(2)], [torch.ones(2), None])
    with pytest.raises(ValueError, match="differ in shape"):
        gm.combine([torch.ones(2)], [torch.ones(3)])


def test_remedy_2d_conflict_rotates_to_an_acute_angle():
    # h = (1, 0), g = (-1, 1): g_perp = (0, 1), g' = g_perp + (1/sqrt2) h
    result = combine_one("remedy", [1.0, 0.0], [-1.0, 1.0])
    torch.testing.assert_close(
        result, torch.tensor([1.0 + 1 / math.sqrt(2), 1.0])
    )
    modulated_aux = result - torch.tensor([1.0, 0.0])
    # tan of the angle to h = ||g|| / ||h|| = sqrt(2)
    tan = modulated_aux[1] / modulated_aux[0]
    assert tan.item() == pytest.approx(math.sqrt(2))


def test_remedy_3d_conflict_with_dominant_aux_rescales_both():
    # h = (1, 0, 0), g = (-30, 40, 0): step 1 g' = (0.8, 40, 0);
    # ||g'|| > 5 ||h|| so with c = cos(g', h): c g' + h / c
    main, aux = [1.0, 0.0, 0.0], [-30.0, 40.0, 0.0]
    g1 = torch.tensor([0.8, 40.0, 0.0])
    cos = 0.8 / g1.norm()
    expected = cos * g1 + torch.tensor(main) / cos
    torch.testing.assert_close(combine_one("remedy", main, aux), expected)


def test_remedy_rescales_a_dominant_aux_without_conflict_too():
    # g = (6, 8, 0): no conflict, ||g|| = 10 > 5, cos = 0.6
    result = combine_one("remedy", [1.0, 0.0, 0.0], [6.0, 8.0, 0.0])
    torch.testing.assert_close(result, torch.tensor([3.6 + 1 / 0.6, 4.8, 0.0]))
    below_k = GradientModulation("remedy", remedy_k=20.0).combine(
        [torch.tensor([1.0, 0.0, 0.0])], [torch.tensor([6.0, 8.0, 0.0])]
    )[0]
    torch.testing.assert_close(below_k, torch.tensor([7.0, 8.0, 0.0]))


def test_remedy_random_3d_conflict_meets_its_definition():
    torch.manual_seed(0)
    for _ in range(20):
        main, aux = torch.randn(3), torch.randn(3)
        if torch.dot(aux, main) >= 0:
            aux = aux - 2 * torch.dot(aux, main) / main.square().sum() * main
        if aux.norm() > 5 * main.norm():
            continue
        modulated_aux = combine_one("remedy", main, aux) - main
        along = torch.dot(modulated_aux, main) / main.norm()
        across = (modulated_aux - along * main / main.norm()).norm()
        assert along > 0  # acute
        assert (across / along).item() == pytest.approx(
            (aux.norm() / main.norm()).item(), rel=1e-4
        )


def test_stats_accumulate_over_steps_and_tensors_and_reset():
    gm = GradientModulation("project")
    main = [torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0])]
    gm.combine(main, [torch.tensor([-1.0, 0.0]), torch.tensor([0.0, 4.0])])
    gm.combine(main, [torch.tensor([1.0, 0.0]), None])
    stats = gm.stats()
    assert stats["steps"] == 2
    assert stats["conflict_fraction"] == pytest.approx(1 / 3)
    assert stats["mean_cosine"] == pytest.approx((-1 + 0 + 1) / 3)
    assert stats["mean_norm_ratio"] == pytest.approx((1 + 2 + 1) / 3)
    gm.reset_stats()
    assert gm.stats()["steps"] == 0
    assert math.isnan(gm.stats()["conflict_fraction"])


def test_the_module_does_not_import_speechbrain():
    source_root = os.path.dirname(os.path.dirname(gmsep.__file__))
    code = (
        "import sys, gmsep.gradient_modulation; "
        "sys.exit('speechbrain' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": source_root}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


# A real step of a tiny unified network


def fixed_batch():
    torch.manual_seed(1)
    sources = torch.randn(2, 161, 2)
    clean_mix = sources.sum(-1)
    return clean_mix + 0.3 * torch.randn(2, 161), clean_mix, sources


def task_losses(model, batch):
    mix, clean_mix, sources = batch
    main, aux, _ = weighted_objectives(
        OBJECTIVES, model(mix, clean_mix), sources
    )
    return main, aux


def shared_params(model):
    return [*model.encoder.parameters(), *model.enhancer.parameters()]


def separator_params(model):
    return [*model.masknet.parameters(), *model.decoder.parameters()]


def reference_gradients(model, batch):
    """Plain gradients of each loss, computed separately (from scratch)."""
    main, aux = task_losses(model, batch)
    params = list(model.parameters())
    g_main = torch.autograd.grad(
        main, params, retain_graph=True, allow_unused=True
    )
    g_aux = torch.autograd.grad(aux, params, allow_unused=True)
    zero = [torch.zeros_like(p) for p in params]
    return (
        {
            p: g if g is not None else z
            for p, g, z in zip(params, g_main, zero, strict=True)
        },
        {
            p: g if g is not None else z
            for p, g, z in zip(params, g_aux, zero, strict=True)
        },
    )


def gm_gradients(model, batch, mode):
    model.zero_grad(set_to_none=True)
    main, aux = task_losses(model, batch)
    GradientModulation(mode).backward(main, aux, shared_params(model))
    return {p: p.grad.clone() for p in model.parameters()}


def assert_is_modulated(model, grads, g_main, g_aux):
    """The GM contract: separator gradients are the plain SS gradients, shared
    gradients are main + projected aux."""
    for p in separator_params(model):
        torch.testing.assert_close(grads[p], g_main[p])
    for p in shared_params(model):
        torch.testing.assert_close(
            grads[p],
            projected_reference(g_main[p], g_aux[p]),
            rtol=1e-4,
            atol=1e-6,
        )


def conflicting(g_main, g_aux, params):
    return [
        torch.dot(g_aux[p].flatten(), g_main[p].flatten()) < 0 for p in params
    ]


def test_gm_step_on_a_tiny_unified_network():
    model, batch = tiny_separator(), fixed_batch()
    g_main, g_aux = reference_gradients(model, batch)
    shared = shared_params(model)
    conflict = conflicting(g_main, g_aux, shared)
    assert any(conflict) and not all(conflict)  # the test needs both cases
    # the SE loss reaches no separator parameter
    assert all(g_aux[p].abs().sum() == 0 for p in separator_params(model))

    projected = gm_gradients(model, batch, "project")
    plain = gm_gradients(model, batch, "none")
    assert_is_modulated(model, projected, g_main, g_aux)
    for p in model.parameters():
        torch.testing.assert_close(plain[p], g_main[p] + g_aux[p], **TOL)
    for p, in_conflict in zip(shared, conflict, strict=True):
        differs = not torch.allclose(projected[p], plain[p], **TOL)
        assert differs == bool(in_conflict)
    for p in separator_params(model):
        torch.testing.assert_close(projected[p], plain[p])


def published_pattern_gradients(model, batch):
    """The published code's pattern: keep references to .grad after the aux
    backward, zero the gradients in place, then run the main backward."""
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # as after any earlier step
    main, aux = task_losses(model, batch)
    aux.backward(retain_graph=True)
    kept_aux = [p.grad for p in shared_params(model)]  # references, not copies
    model.zero_grad(set_to_none=False)  # zeroes those same buffers
    main.backward()
    for p, g_aux in zip(shared_params(model), kept_aux, strict=True):
        p.grad = projected_reference(p.grad, g_aux)
    return {p: p.grad.clone() for p in model.parameters()}, kept_aux


def test_aliasing_of_the_published_pattern_is_caught():
    model, batch = tiny_separator(), fixed_batch()
    g_main, g_aux = reference_gradients(model, batch)

    buggy, kept_aux = published_pattern_gradients(model, batch)
    # the kept "aux gradients" are no longer the aux gradients
    assert not all(
        torch.allclose(k, g_aux[p])
        for k, p in zip(kept_aux, shared_params(model), strict=True)
    )
    with pytest.raises(AssertionError):
        assert_is_modulated(model, buggy, g_main, g_aux)

    assert_is_modulated(
        model, gm_gradients(model, batch, "project"), g_main, g_aux
    )


def test_published_mode_is_the_published_pattern_to_the_last_bit():
    """The published pattern, run literally in float64 (torch >= 2.0 zeroes
    in place only when asked to, as torch 1.8 always did), is mode
    "published": the SS gradient alone, doubled on the shared tensors."""
    model = tiny_separator().double()
    batch = tuple(x.double() for x in fixed_batch())
    g_main, _ = reference_gradients(model, batch)
    published, _ = published_pattern_gradients(model, batch)

    model.zero_grad(set_to_none=True)
    main, aux = task_losses(model, batch)
    gm = GradientModulation("published")
    gm.backward(main, aux, shared_params(model))

    for p in model.parameters():
        assert torch.equal(p.grad, published[p])
    for p in shared_params(model):
        torch.testing.assert_close(p.grad, 2 * g_main[p], rtol=1e-12, atol=0)
    for p in separator_params(model):
        torch.testing.assert_close(p.grad, g_main[p], rtol=1e-12, atol=0)
    assert gm.stats()["conflict_fraction"] == 0.0  # as the authors' code saw
    assert gm.stats()["mean_cosine"] == pytest.approx(1.0)


def test_backward_keeps_accumulated_gradients_and_applies_the_reduction():
    model, batch = tiny_separator(), fixed_batch()
    once = gm_gradients(model, batch, "project")
    # a second backward on top of the first: accumulation
    main, aux = task_losses(model, batch)
    GradientModulation("project").backward(main, aux, shared_params(model))
    for p in model.parameters():
        torch.testing.assert_close(p.grad, 2 * once[p])

    # the reduction's result is what gets combined: here it drops the aux grads
    model.zero_grad(set_to_none=True)
    main, aux = task_losses(model, batch)
    reduced = []

    def drop_aux(grads):
        reduced.append(len(grads))
        return [torch.zeros_like(g) if g is not None else None for g in grads]

    GradientModulation("project").backward(
        main, aux, shared_params(model), drop_aux
    )
    assert reduced == [len(shared_params(model))]
    g_main, _ = reference_gradients(model, batch)
    for p in model.parameters():
        torch.testing.assert_close(p.grad, g_main[p])


def test_backward_without_aux_loss_is_the_plain_backward():
    model, batch = tiny_separator(), fixed_batch()
    g_main, _ = reference_gradients(model, batch)
    main, _ = task_losses(model, batch)
    GradientModulation("project").backward(main, None, shared_params(model))
    for p in model.parameters():
        torch.testing.assert_close(p.grad, g_main[p])


@pytest.mark.parametrize("mode", GradientModulation.MODES)
def test_a_few_steps_lower_the_total_loss(mode):
    model, batch = tiny_separator(), fixed_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gm = GradientModulation(mode)
    totals = []
    for _ in range(6):
        optimizer.zero_grad(set_to_none=True)
        main, aux = task_losses(model, batch)
        totals.append((main + aux).item())
        gm.backward(main, aux, shared_params(model))
        optimizer.step()
    assert totals[-1] < totals[0]
    assert gm.stats()["steps"] == (0 if mode == "none" else 6)
