"""Training augmentation of the paper: speed-perturbed sources, mixture rebuilt.

Authors
 * gmsep contributors 2026
"""

import torch
from speechbrain.augment.time_domain import SpeedPerturb


class SpeedPerturbRemix(torch.nn.Module):
    """Speed-perturbs every source independently and rebuilds the mixtures.

    Each source of each item is resampled at a speed drawn from `speeds`
    (SpeedPerturb draws one speed per call, so it is called once per source
    and item), all signals are cropped to the shortest perturbed source (at
    most the input length), the clean mixture is the sum of the perturbed
    sources and the noisy mixture adds the (cropped, unperturbed) noise. The
    sums are exact, so the SE target and the separation targets stay
    consistent with the input. Without noise (the clean condition, input
    ``mix_clean``) the rebuilt mixture is the clean mixture: adding the
    corpus's noise back would train on noisy mixtures and evaluate on clean
    ones.

    With batches of more than one item the padding zeros of the shorter
    items are perturbed along with their speech; the paper's setting is
    batch 1, where there is no padding.

    Arguments
    ---------
    sample_rate : int
        Sample rate in Hz of the signals.
    speeds : sequence of int
        Speeds in percent of the original (the paper: 95, 100, 105). With
        ``[100]`` the sources are returned unchanged.

    Example
    -------
    >>> remix = SpeedPerturbRemix(8000)
    >>> sources, noise = torch.randn(2, 800, 3), torch.randn(2, 800)
    >>> mix, sources_p, clean_mix = remix(sources, noise)
    >>> mix.shape[1] == sources_p.shape[1] == clean_mix.shape[1] <= 800
    True
    >>> torch.equal(mix, sources_p.sum(-1) + noise[:, : mix.shape[1]])
    True
    >>> mix, sources_p, clean_mix = remix(sources, noise=None)
    >>> torch.equal(mix, clean_mix)
    True
    """

    def __init__(self, sample_rate, speeds=(95, 100, 105)):
        super().__init__()
        self.speed_perturb = SpeedPerturb(
            orig_freq=sample_rate, speeds=list(speeds)
        )

    def forward(self, sources, noise=None):
        """Returns the remixed mixture, the perturbed sources and their sum.

        Arguments
        ---------
        sources : torch.Tensor
            Clean sources, [B, T, S].
        noise : torch.Tensor or None
            Noise, [B, T]; None for clean mixtures.

        Returns
        -------
        mix : torch.Tensor
            clean_mix + noise (clean_mix without noise), [B, T'].
        sources : torch.Tensor
            Perturbed sources, [B, T', S], T' the shortest perturbed length
            (at most T).
        clean_mix : torch.Tensor
            Sum of the perturbed sources, [B, T'].
        """
        if sources.dim() != 3 or (
            noise is not None and noise.shape != sources.shape[:2]
        ):
            raise ValueError(
                "SpeedPerturbRemix expects sources [B, T, S] and noise [B, T], "
                f"got {tuple(sources.shape)} and "
                f"{None if noise is None else tuple(noise.shape)}"
            )
        batch, time, num_spks = sources.shape
        perturbed = [
            self.speed_perturb(sources[b : b + 1, :, s])[0]  # T_bs
            for b in range(batch)
            for s in range(num_spks)
        ]
        # Slowed-down sources outgrow the noise: never longer than the input
        length = min(time, *(len(source) for source in perturbed))
        sources = torch.stack(
            [source[:length] for source in perturbed]
        )  # B*S, T'
        sources = (
            sources.view(batch, num_spks, length).transpose(1, 2).contiguous()
        )  # B, T', S
        clean_mix = sources.sum(-1)  # B, T'
        if noise is None:
            return clean_mix, sources, clean_mix
        return clean_mix + noise[:, :length], sources, clean_mix
