"""Gradient modulation against a straightforward per-tensor reference.

``GradientModulation`` computes its per-tensor decisions batched, on-device
and without host synchronisation; these tests hold it to a plain
implementation of the definitions, one tensor at a time in float64 with
Python control flow, to 1e-6 relative. They also check that the auxiliary
(SE) backward pass does no work beyond the Encoder and the EnhanceNet.
"""

import pytest
import torch
from gmsep.gradient_modulation import GradientModulation
from gmsep.losses import (
    weighted_objectives,
)
from tiny_config import OBJECTIVES, tiny_separator

RELATIVE_TOLERANCE = 1e-6
SHAPES = [(7,), (3, 5), (4, 2, 3), (16,), (2, 8), (5,), (6, 6), (1,)]


def reference_combine(mode, main, aux, remedy_k=5.0):
    """The combined gradient of one tensor, from the definitions (float64)."""
    h = main.double().flatten()
    if aux is None:
        return h.reshape(main.shape)
    # published: the kept "auxiliary gradient" is the main one (aliasing)
    g = h if mode == "published" else aux.double().flatten()
    dot = torch.dot(g, h)
    if mode != "none" and dot < 0:
        g_perp = g - dot / torch.dot(h, h) * h
        g = (
            g_perp
            if mode == "project"
            else g_perp + g_perp.norm() / g.norm() * h
        )
    if mode == "remedy" and h.norm() > 0 and g.norm() > 0:
        cos = torch.dot(g, h) / (g.norm() * h.norm())
        if g.norm() > remedy_k * h.norm() and cos > 0:
            g, h = cos * g, h / cos
    return (h + g).reshape(main.shape)


def assert_close_relative(actual, expected):
    """||actual - expected|| <= 1e-6 ||expected|| (exact match for zero)."""
    error = (actual.double() - expected).norm()
    assert error <= RELATIVE_TOLERANCE * expected.norm(), (
        f"relative error {error / expected.norm():.2e}"
    )


def random_gradients(seed):
    """Main and auxiliary gradients of SHAPES: some in conflict, some not,
    one zero main gradient, one zero and one missing auxiliary gradient."""
    generator = torch.Generator().manual_seed(seed)
    main, aux = [], []
    for i, shape in enumerate(SHAPES):
        h = torch.randn(shape, generator=generator)
        noise = torch.randn(shape, generator=generator)
        # even: conflicting (pulled against h), odd: agreeing
        g = (-0.8 if i % 2 == 0 else 0.8) * h + 0.5 * noise
        main.append(h)
        aux.append(g)
    main[3] = torch.zeros(SHAPES[3])
    aux[4] = torch.zeros(SHAPES[4])
    aux[5] = None
    aux[7] = 40.0 * main[7]  # a dominant aux gradient: remedy rescales
    return main, aux


@pytest.mark.parametrize("mode", GradientModulation.MODES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_combine_matches_the_per_tensor_reference(mode, seed):
    main, aux = random_gradients(seed)
    conflict = [
        a is not None and torch.dot(a.flatten(), m.flatten()) < 0
        for m, a in zip(main, aux, strict=True)
    ]
    assert any(conflict) and not all(conflict)  # both cases are covered
    originals = (
        [m.clone() for m in main],
        [None if a is None else a.clone() for a in aux],
    )

    combined = GradientModulation(mode).combine(main, aux)

    assert len(combined) == len(main)
    for result, m, a in zip(combined, main, aux, strict=True):
        assert result.shape == m.shape and result.dtype == m.dtype
        assert_close_relative(result, reference_combine(mode, m, a))
    # the inputs are left as they were
    for before, after in zip(originals[0], main, strict=True):
        assert torch.equal(before, after)
    for before, after in zip(originals[1], aux, strict=True):
        assert before is None or torch.equal(before, after)


@pytest.mark.parametrize("mode", ["project", "remedy"])
def test_combine_of_all_zero_gradients_is_zero(mode):
    zeros = [torch.zeros(shape) for shape in SHAPES]
    combined = GradientModulation(mode).combine(
        zeros, [z.clone() for z in zeros]
    )
    assert all(torch.equal(c, z) for c, z in zip(combined, zeros, strict=True))


# A tiny unified network: its real backward passes


def task_losses(model):
    torch.manual_seed(1)
    sources = torch.randn(2, 161, 2)
    clean_mix = sources.sum(-1)
    mix = clean_mix + 0.3 * torch.randn(2, 161)
    main, aux, _ = weighted_objectives(
        OBJECTIVES, model(mix, clean_mix), sources
    )
    return main, aux


def shared_params(model):
    return [*model.encoder.parameters(), *model.enhancer.parameters()]


def separator_params(model):
    return [*model.masknet.parameters(), *model.decoder.parameters()]


@pytest.mark.parametrize("mode", ["project", "remedy"])
def test_backward_matches_the_reference_on_a_tiny_network(mode):
    model = tiny_separator()
    main, aux = task_losses(model)
    params = list(model.parameters())
    g_main = torch.autograd.grad(main, params, retain_graph=True)
    g_aux = torch.autograd.grad(aux, shared_params(model), retain_graph=True)
    expected = dict(zip(params, g_main, strict=True))
    for p, g in zip(shared_params(model), g_aux, strict=True):
        expected[p] = reference_combine(mode, expected[p], g)

    GradientModulation(mode).backward(main, aux, shared_params(model))

    for p in params:
        assert_close_relative(p.grad, expected[p].double())


def leaf_parameters_of_graph(loss):
    """The leaf tensors a backward pass from ``loss`` would reach."""
    leaves, seen, stack = set(), set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):  # AccumulateGrad
            leaves.add(node.variable)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return leaves


def test_the_se_loss_graph_holds_only_encoder_and_enhancer():
    model = tiny_separator()
    _, aux = task_losses(model)
    assert leaf_parameters_of_graph(aux) == set(shared_params(model))


@pytest.mark.parametrize("mode", GradientModulation.MODES)
def test_masknet_and_decoder_gradients_are_computed_once(mode):
    """GM's extra backward pass (the SE gradient) stops at the enhancer: the
    separator's gradients are computed once, as in the plain backward."""
    model = tiny_separator()
    calls = {p: 0 for p in model.parameters()}
    for p in model.parameters():
        p.register_hook(lambda grad, p=p: calls.__setitem__(p, calls[p] + 1))
    main, aux = task_losses(model)

    GradientModulation(mode).backward(main, aux, shared_params(model))

    assert all(calls[p] == 1 for p in separator_params(model))
    shared_passes = 1 if mode in ("none", "published") else 2
    assert all(calls[p] == shared_passes for p in shared_params(model))
