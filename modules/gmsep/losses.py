"""The two training objectives of the unified network, as a multi-task list.

* SS (main task): permutation-invariant negative SI-SNR of the separated
  sources (:class:`PITNegSISNR`).
* SE (auxiliary task): MSE between the enhanced features E and the encoded
  clean mixture (:class:`EnhancedFeatureMSE`).

Each objective is an :class:`Objective` entry (criterion, weight, whether it
is auxiliary) of a list built in the hparams; :func:`weighted_objectives`
reduces the list to the main and auxiliary losses that the gradient
modulation combines, so the training loop never special-cases the SE loss.

Authors
 * gmsep contributors 2026
"""

from dataclasses import dataclass, replace

import torch
from speechbrain.nnet.losses import get_si_snr_with_pitwrapper
from torch import nn


class PITNegSISNR(nn.Module):
    """Permutation-invariant negative SI-SNR (dB), mean over speakers.

    Items whose SI-SNR already exceeds ``threshold`` dB are dropped from the
    batch mean, as in SpeechBrain's separation recipes, so that training does
    not keep pushing solved mixtures. If every item is dropped, the loss is
    ``-threshold`` with no gradient. The threshold is a training device:
    validation and test score every item (:meth:`for_evaluation`), as
    SpeechBrain's recipes and the paper's code do.

    Arguments
    ---------
    threshold : float or None
        SI-SNR (dB) above which an item no longer counts; None keeps all.

    Example
    -------
    >>> from gmsep.model import SeparatorOutput
    >>> sources = torch.randn(3, 800, 2)
    >>> estimates = sources[:, :, [1, 0]] + 0.1 * torch.randn(3, 800, 2)
    >>> loss = PITNegSISNR(threshold=None)
    >>> bool(loss.per_item(estimates, sources).lt(-15).all())
    True
    >>> PITNegSISNR(threshold=10.0)(SeparatorOutput(estimates), sources)
    tensor(-10.)
    >>> bool(PITNegSISNR(10.0).for_evaluation()(SeparatorOutput(estimates), sources) < -15)
    True
    """

    # The loss is a mean over the items of the batch: gradient accumulation
    # divides it by the number of micro-batches.
    batch_reduction = "mean"

    def __init__(self, threshold=30.0):
        super().__init__()
        self.threshold = threshold

    def for_evaluation(self):
        """The criterion of validation and test: the same loss, no threshold.

        Returns
        -------
        PITNegSISNR
        """
        return self if self.threshold is None else PITNegSISNR(threshold=None)

    def forward(self, output, sources):
        """The batch loss.

        Arguments
        ---------
        output : gmsep.model.SeparatorOutput
            The network output; its ``est_sources`` (B, T, S) are scored.
        sources : torch.Tensor
            The clean sources, shape B, T, S.

        Returns
        -------
        torch.Tensor
            Scalar: mean negative SI-SNR of the items that still count.
        """
        per_item = self.per_item(output.est_sources, sources)  # B
        if self.threshold is None:
            return per_item.mean()
        # A NaN item is kept (not "above the threshold") so that it shows.
        keep = ~(per_item <= -self.threshold)
        kept_mean = torch.where(
            keep, per_item, 0.0
        ).sum() / keep.sum().clamp_min(1)
        # No host sync: with every item dropped, -threshold and no gradient.
        return torch.where(
            keep.any(), kept_mean, per_item.new_tensor(-self.threshold)
        )

    def per_item(self, est_sources, sources):
        """Negative SI-SNR of each item under its best speaker permutation.

        Arguments
        ---------
        est_sources : torch.Tensor
            Estimated sources, shape B, T, S.
        sources : torch.Tensor
            Clean sources, shape B, T, S.

        Returns
        -------
        torch.Tensor
            Shape B.
        """
        if est_sources.shape != sources.shape or est_sources.dim() != 3:
            raise ValueError(
                "PITNegSISNR expects estimated and clean sources of the same "
                f"shape (B, T, S), got {tuple(est_sources.shape)} and "
                f"{tuple(sources.shape)}"
            )
        return get_si_snr_with_pitwrapper(sources, est_sources)


class EnhancedFeatureMSE(nn.Module):
    """MSE between the enhanced features E and Encoder(clean mixture).

    Arguments
    ---------
    reduction : str
        "sum": summed over all elements, as in the paper's code (its scale
        grows with the utterance length and the batch size); "mean": averaged
        over elements (length-independent).
    detach_target : bool
        If True, no gradient flows through the target branch Encoder(clean
        mixture): the Encoder then learns from the SE loss only through E.
        The paper's code does not detach it.

    Example
    -------
    >>> from gmsep.model import SeparatorOutput
    >>> enhanced, clean = torch.ones(1, 4, 5), torch.zeros(1, 4, 5)
    >>> output = SeparatorOutput(torch.zeros(1, 40, 2), enhanced, clean)
    >>> EnhancedFeatureMSE()(output, None)
    tensor(20.)
    >>> EnhancedFeatureMSE(reduction="mean")(output, None)
    tensor(1.)
    """

    REDUCTIONS = ("sum", "mean")

    def __init__(self, reduction="sum", detach_target=False):
        super().__init__()
        if reduction not in self.REDUCTIONS:
            raise ValueError(
                f"EnhancedFeatureMSE: reduction={reduction!r} is not one of "
                f"{self.REDUCTIONS}"
            )
        self.reduction = reduction
        self.detach_target = detach_target

    @property
    def batch_reduction(self):
        """How the loss reduces over the batch: "sum" (the loss of a batch
        is the sum of its micro-batches' losses, so gradient accumulation
        must not divide it) or "mean"."""
        return self.reduction

    def forward(self, output, sources):
        """The SE loss.

        Arguments
        ---------
        output : gmsep.model.SeparatorOutput
            Must carry ``enhanced_feats`` and ``clean_feats`` (B, N, L): a
            model with an EnhanceNet called with the clean mixture.
        sources : torch.Tensor
            Unused (the target is in ``output``); kept for the common
            criterion signature.

        Returns
        -------
        torch.Tensor
            Scalar.
        """
        if output.enhanced_feats is None or output.clean_feats is None:
            raise ValueError(
                "EnhancedFeatureMSE needs enhanced_feats and clean_feats: the "
                "separator must have an enhancer and be called with clean_mix "
                "(the SE objective is only usable for the unified model in "
                "training)"
            )
        target = output.clean_feats
        if self.detach_target:
            target = target.detach()
        return nn.functional.mse_loss(
            output.enhanced_feats, target, reduction=self.reduction
        )


@dataclass
class Objective:
    """One entry of the multi-task objective list.

    Arguments
    ---------
    name : str
        Name under which the loss value is reported (e.g. "ss", "se").
    criterion : torch.nn.Module
        Called as ``criterion(output, sources)``, returns a scalar.
    weight : float
        Multiplies the loss in the total.
    auxiliary : bool
        True for an auxiliary task (SE), whose gradient the gradient
        modulation may alter; False for the main task (SS).
    """

    name: str
    criterion: nn.Module
    weight: float = 1.0
    auxiliary: bool = False


def evaluation_objectives(objectives):
    """The objectives as validation and test compute them.

    Model selection uses the main task only, so the auxiliary entries are
    dropped; a criterion with a training-only part (the SI-SNR threshold of
    :class:`PITNegSISNR`) is replaced by its ``for_evaluation()`` version.

    Arguments
    ---------
    objectives : list of Objective
        The training objectives.

    Returns
    -------
    list of Objective
        The main entries, with their evaluation criteria.

    Example
    -------
    >>> objectives = [
    ...     Objective("ss", PITNegSISNR(threshold=30.0)),
    ...     Objective("se", EnhancedFeatureMSE(), weight=0.1, auxiliary=True)]
    >>> [(o.name, o.criterion.threshold) for o in evaluation_objectives(objectives)]
    [('ss', None)]
    """
    evaluated = []
    for objective in objectives:
        if objective.auxiliary:
            continue
        for_evaluation = getattr(objective.criterion, "for_evaluation", None)
        if for_evaluation is not None:
            objective = replace(objective, criterion=for_evaluation())
        evaluated.append(objective)
    return evaluated


def weighted_objectives(objectives, output, sources):
    """Reduces the objective list to a main and an auxiliary loss.

    Arguments
    ---------
    objectives : list of Objective
        At least one non-auxiliary entry.
    output : gmsep.model.SeparatorOutput
        The network output.
    sources : torch.Tensor
        The clean sources, shape B, T, S.

    Returns
    -------
    main_loss : torch.Tensor
        Sum of weight * loss over the main objectives.
    aux_loss : torch.Tensor or None
        Sum of weight * loss over the auxiliary objectives; None if none.
    values : dict
        Name -> unweighted loss (detached scalar tensor), for logging.

    Example
    -------
    >>> from gmsep.model import SeparatorOutput
    >>> sources = torch.randn(2, 800, 2)
    >>> output = SeparatorOutput(sources.flip(-1), torch.ones(2, 4, 5), torch.zeros(2, 4, 5))
    >>> objectives = [
    ...     Objective("ss", PITNegSISNR()),
    ...     Objective("se", EnhancedFeatureMSE(), weight=0.1, auxiliary=True)]
    >>> main, aux, values = weighted_objectives(objectives, output, sources)
    >>> float(aux), float(values["se"])
    (4.0, 40.0)
    """
    main_losses, aux_losses, values = [], [], {}
    for objective in objectives:
        loss = objective.criterion(output, sources)
        values[objective.name] = loss.detach()
        weighted = objective.weight * loss
        (aux_losses if objective.auxiliary else main_losses).append(weighted)
    if not main_losses:
        raise ValueError(
            "weighted_objectives: the objectives list needs at least one main "
            f"(auxiliary=False) entry, got {[o.name for o in objectives]}"
        )
    aux_loss = torch.stack(aux_losses).sum() if aux_losses else None
    return torch.stack(main_losses).sum(), aux_loss, values
