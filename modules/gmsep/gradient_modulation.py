"""Gradient modulation (GM): combining a main and an auxiliary task gradient.

In the unified network the Encoder and the EnhanceNet receive gradients from
both the separation (SS, main) loss and the enhancement (SE, auxiliary) loss.
Where the two disagree, GM drops the part of the auxiliary gradient that
conflicts with the main one, separately for every shared parameter tensor
(Hu et al., ICASSP 2023). The main gradient is never altered, so the
auxiliary task can only help the main one.

This module is plain torch: it knows nothing of SpeechBrain or of the network.

Authors
 * gmsep contributors 2026
"""

import torch


class GradientModulation:
    """Combines main and auxiliary gradients per parameter tensor.

    For every shared parameter tensor, flattened to vectors h = g_main and
    g = g_aux (both already weighted by their loss weights), the new gradient
    is ``h' + g'`` where, by mode:

    * ``"none"``: g' = g, h' = h (plain multi-task sum).
    * ``"project"`` (the paper's GM): if <g, h> < 0, g' = g - <g, h> / ||h||^2 h
      (g' is orthogonal to h); else g' = g. h' = h.
    * ``"remedy"`` (Gradient Remedy, Hu et al., ICASSP 2023, arXiv 2302.11362,
      as defined by the authors' published code):

      1. Only on conflict (<g, h> < 0): project as above, g_perp = g - <g, h> /
         ||h||^2 h, then push it back towards h:
         g' = g_perp + (||g_perp|| / ||g||) h.
         The angle theta between g' and h is then acute with
         tan(theta) = ||g|| / ||h|| (the norms before projection).
         Without conflict g' = g.
      2. Always (conflict or not): with cos' = <g', h> / (||g'|| ||h||), the
         cosine between the step-1 result and h, if ||g'|| > K ||h|| and
         cos' > 0: g' <- cos' g' and h' = h / cos' (the only case where the
         main gradient is changed); else h' = h.
    * ``"published"``: g' = h, h' = h, so the result is 2 h. This is the update
      the authors' published code computed, not the method it describes: it
      kept references to ``p.grad`` after the SE backward, zeroed the
      gradients in place (torch < 2.0) and ran the SS backward into the same
      tensors, so the "SE gradients" it projected were the SS gradients, no
      conflict was ever found and every shared tensor got twice the SS
      gradient. ``backward`` does not back-propagate the auxiliary loss at
      all; ``combine`` ignores the auxiliary gradients it is given (the
      statistics are those the published code saw: cosine 1, no conflict).
      Kept so that the paper's numbers can be reproduced as they were run.

    A zero main gradient counts as no conflict and is never divided by; finite
    gradients never give NaN. Non-finite gradients stay non-finite so that the
    training loop's check skips the step. All decisions are made on-device:
    no host synchronisation per tensor.

    Scaling both losses by a common factor scales the result by it (the
    decisions are scale-free), so GM commutes with a mixed-precision loss
    scaler.

    Arguments
    ---------
    mode : str
        One of ``MODES``: "none", "project", "remedy" or "published".
    remedy_k : float
        The threshold K of the remedy's rescaling step (> 0).

    Example
    -------
    >>> gm = GradientModulation("project")
    >>> main, aux = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    >>> gm.combine([main], [aux])
    [tensor([1., 1.])]
    >>> gm.stats()["conflict_fraction"]
    1.0
    """

    MODES = ("none", "project", "remedy", "published")

    def __init__(self, mode="project", remedy_k=5.0):
        if mode not in self.MODES:
            raise ValueError(
                f"GradientModulation: mode={mode!r} is not one of {self.MODES}"
            )
        if not remedy_k > 0:
            raise ValueError(
                f"GradientModulation: remedy_k must be positive, got {remedy_k}"
            )
        self.mode = mode
        self.remedy_k = remedy_k
        self.reset_stats()

    def combine(self, main_grads, aux_grads):
        """Combines the gradients of the same parameter tensors.

        Arguments
        ---------
        main_grads : sequence of torch.Tensor
            Main-task gradient of each tensor.
        aux_grads : sequence of torch.Tensor or None
            Auxiliary-task gradient of each tensor (same shapes); None where
            the auxiliary loss does not reach the tensor.

        Returns
        -------
        list of torch.Tensor
            The combined gradient of each tensor (new tensors; the inputs are
            not modified). Counts as one step for ``stats``.
        """
        if len(main_grads) != len(aux_grads):
            raise ValueError(
                f"GradientModulation.combine: got {len(main_grads)} main and "
                f"{len(aux_grads)} auxiliary gradients for the same tensors"
            )
        combined = list(main_grads)
        paired = [i for i, g_aux in enumerate(aux_grads) if g_aux is not None]
        self._steps += 1
        if not paired:
            return combined
        main = [main_grads[i] for i in paired]
        # published: the kept "auxiliary gradients" are the main ones (aliasing)
        aux = (
            main if self.mode == "published" else [aux_grads[i] for i in paired]
        )
        for g_main, g_aux in zip(main, aux, strict=True):
            if g_main.shape != g_aux.shape:
                raise ValueError(
                    "GradientModulation.combine: main and auxiliary gradients "
                    f"of one tensor differ in shape: {tuple(g_main.shape)} vs "
                    f"{tuple(g_aux.shape)}"
                )

        # One entry per tensor: <g, h>, ||h||^2, ||g||^2.
        dot = torch.stack(
            [
                torch.dot(a.reshape(-1), m.reshape(-1))
                for a, m in zip(aux, main, strict=True)
            ]
        )
        main_sq = torch.stack(torch._foreach_norm(main)).square()
        aux_sq = torch.stack(torch._foreach_norm(aux)).square()
        self._accumulate_stats(dot, main_sq, aux_sq)

        aux_scale, main_coef = self._coefficients(dot, main_sq, aux_sq)
        for j, i in enumerate(paired):
            # aux_scale * g + main_coef * h
            scaled_aux = aux[j] if aux_scale is None else aux[j] * aux_scale[j]
            combined[i] = torch.addcmul(scaled_aux, main_coef[j], main[j])
        return combined

    def _coefficients(self, dot, main_sq, aux_sq):
        """Per-tensor (s, w) such that the combined gradient is s g + w h.

        With g' = g + a h (a = 0 without conflict) and the remedy's rescaling
        s: s g' + h / s = s g + (s a + 1 / s) h. s is None where it is 1.
        """
        if self.mode == "none":
            return None, torch.ones_like(dot)
        tiny = torch.finfo(dot.dtype).tiny
        conflict = dot < 0  # False for a zero main gradient (dot = 0)
        proj = torch.where(conflict, dot / main_sq.clamp_min(tiny), 0.0)
        if self.mode in ("project", "published"):
            return None, 1.0 - proj

        # Step 1: g' = g_perp + (||g_perp|| / ||g||) h, with
        # ||g_perp||^2 = ||g||^2 - <g, h>^2 / ||h||^2.
        perp_sq = (aux_sq - proj * dot).clamp_min(0.0)
        lift = torch.where(
            conflict, perp_sq.sqrt() / aux_sq.sqrt().clamp_min(tiny), 0.0
        )
        a = lift - proj
        # Step 2 on the norms and angle of g' = g + a h.
        new_aux_norm = (
            (aux_sq + 2 * a * dot + a.square() * main_sq).clamp_min(0).sqrt()
        )
        new_dot = dot + a * main_sq
        main_norm = main_sq.sqrt()
        cos = (new_dot / (new_aux_norm * main_norm).clamp_min(tiny)).clamp(
            max=1.0
        )
        rescale = (new_aux_norm > self.remedy_k * main_norm) & (cos > 0)
        scale = torch.where(rescale, cos, 1.0)
        return scale, scale * a + 1.0 / scale

    def backward(
        self, main_loss, aux_loss, shared_params, aux_grad_reduce=None
    ):
        """Back-propagates both losses and leaves the combined gradient in ``.grad``.

        Parameters only the main loss reaches get the plain main gradient.
        Gradients already in ``.grad`` (gradient accumulation) are kept and
        this step's combined gradient is added to them.

        Arguments
        ---------
        main_loss : torch.Tensor
            Scalar main-task (SS) loss, weighted.
        aux_loss : torch.Tensor or None
            Scalar auxiliary-task (SE) loss, weighted; None: plain backward
            of the main loss. Not back-propagated in mode "published".
        shared_params : iterable of torch.nn.Parameter
            The parameters both losses reach (Encoder and EnhanceNet).
        aux_grad_reduce : callable, optional
            Applied to the list of auxiliary gradients before modulation and
            returns the list to use, e.g. an all-reduce average across
            processes (the main gradients are reduced by the main backward).
        """
        if aux_loss is None:
            main_loss.backward()
            return
        if self.mode == "none":
            (main_loss + aux_loss).backward()
            return
        shared_params = list(shared_params)
        if self.mode == "published":
            # The auxiliary gradient never reached the update: no SE backward.
            aux_grads = None
        else:
            # Separate buffers: the auxiliary gradient must not alias .grad,
            # which the main backward writes into.
            aux_grads = list(
                torch.autograd.grad(
                    aux_loss,
                    shared_params,
                    retain_graph=True,
                    allow_unused=True,
                )
            )
            if aux_grad_reduce is not None:
                aux_grads = list(aux_grad_reduce(aux_grads))

        accumulated = [p.grad for p in shared_params]
        for p in shared_params:
            p.grad = None
        main_loss.backward()

        main_grads = [
            torch.zeros_like(p) if p.grad is None else p.grad
            for p in shared_params
        ]
        combined = self.combine(
            main_grads, main_grads if aux_grads is None else aux_grads
        )
        for p, grad, previous in zip(
            shared_params, combined, accumulated, strict=True
        ):
            p.grad = grad if previous is None else previous.add_(grad)

    def reset_stats(self):
        """Clears the statistics accumulated by ``combine``."""
        self._steps = 0
        # pairs, conflicts, sum of cosines, sum of norm ratios, pairs with a
        # nonzero main gradient (where the ratio is defined)
        self._sums = None

    def stats(self):
        """Statistics over the (step, tensor) pairs combined since the last reset.

        Cosine and norm ratio are measured before modulation; pairs with
        non-finite gradients are left out, pairs with a zero main gradient are
        left out of the norm ratio. Undefined means are NaN.

        Returns
        -------
        dict
            ``conflict_fraction`` (share of pairs with <g_aux, g_main> < 0),
            ``mean_cosine``, ``mean_norm_ratio`` (||g_aux|| / ||g_main||) and
            ``steps`` (number of ``combine`` calls).
        """
        sums = [0.0] * 5 if self._sums is None else self._sums.tolist()
        pairs, conflicts, cos_sum, ratio_sum, ratio_pairs = sums

        def mean(total, count):
            return total / count if count else float("nan")

        return {
            "conflict_fraction": mean(conflicts, pairs),
            "mean_cosine": mean(cos_sum, pairs),
            "mean_norm_ratio": mean(ratio_sum, ratio_pairs),
            "steps": self._steps,
        }

    def _accumulate_stats(self, dot, main_sq, aux_sq):
        """Adds one step's per-tensor statistics, on-device."""
        tiny = torch.finfo(dot.dtype).tiny
        main_norm, aux_norm = main_sq.sqrt(), aux_sq.sqrt()
        finite = dot.isfinite() & main_sq.isfinite() & aux_sq.isfinite()
        has_main = finite & (main_sq > 0)
        cosine = dot / (main_norm * aux_norm).clamp_min(tiny)
        ratio = aux_norm / main_norm.clamp_min(tiny)
        step_sums = torch.stack(
            [
                finite.sum(),
                (finite & (dot < 0)).sum(),
                torch.where(finite, cosine, 0.0).sum(),
                torch.where(has_main, ratio, 0.0).sum(),
                has_main.sum(),
            ]
        ).double()
        self._sums = step_sums if self._sums is None else self._sums + step_sums
