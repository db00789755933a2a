"""The unified speech enhancement and separation network.

One time-domain masking network in which a speech-enhancement stage (the
EnhanceNet) denoises the encoded mixture before the separator (the MaskNet)
splits it into speakers (Hu et al., ICASSP 2023)::

    W   = Encoder(noisy mix)           # B, N, L
    E   = W * m_e                      # m_e = EnhanceNet(W), one mask
    m_i = MaskNet(E)                   # i = 1..S
    s_i = Decoder(E * m_i)             # B, T

The Encoder, EnhanceNet, MaskNet and Decoder are built outside (in the
hparams, from SpeechBrain's dual-path lobes), so the same module serves the
SepFormer and the DPRNN backbones. Without an EnhanceNet it is the plain
separator used as a baseline.

Authors
 * gmsep contributors 2026
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F


@dataclass
class SeparatorOutput:
    """What one forward pass of :class:`UnifiedSeparator` produces.

    Arguments
    ---------
    est_sources : torch.Tensor
        The separated sources s_1..s_S, shape B, T, S (T of the input mixture).
    enhanced_feats : torch.Tensor or None
        The enhanced features E = W * m_e, shape B, N, L; None without an
        EnhanceNet.
    clean_feats : torch.Tensor or None
        Encoder(clean mixture), the target of the SE loss, shape B, N, L; None
        unless a clean mixture was given to a model with an EnhanceNet.
    """

    est_sources: torch.Tensor
    enhanced_feats: Optional[torch.Tensor] = None
    clean_feats: Optional[torch.Tensor] = None


class UnifiedSeparator(torch.nn.Module):
    """Encoder -> EnhanceNet -> MaskNet -> Decoder, trained end to end.

    Arguments
    ---------
    encoder : torch.nn.Module
        Maps a waveform B, T to the mixture representation W, shape B, N, L
        (e.g. ``speechbrain.lobes.models.dual_path.Encoder``). It is shared by
        both tasks: it also encodes the clean mixture for the SE target.
    masknet : torch.nn.Module
        The separator's masking network: maps B, N, L to S masks, shape
        S, B, N, L (e.g. a ``Dual_Path_Model`` with ``num_spks=S``).
    decoder : torch.nn.Module
        Maps masked features B, N, L back to waveforms B, T' (e.g.
        ``speechbrain.lobes.models.dual_path.Decoder``).
    enhancer : torch.nn.Module, optional
        The EnhanceNet: a masking network with ONE output mask, shape
        1, B, N, L (a ``Dual_Path_Model`` with ``num_spks=1``). None gives the
        plain separator (SepFormer or DPRNN baseline).
    num_spks : int
        Number of speakers S.

    Example
    -------
    >>> from speechbrain.lobes.models.dual_path import (
    ...     Decoder, Dual_Path_Model, Encoder, SBTransformerBlock)
    >>> def masknet(num_spks):
    ...     return Dual_Path_Model(
    ...         16, 16, SBTransformerBlock(1, 16, 2), SBTransformerBlock(1, 16, 2),
    ...         num_layers=1, K=8, num_spks=num_spks)
    >>> model = UnifiedSeparator(
    ...     Encoder(kernel_size=4, out_channels=16), masknet(2),
    ...     Decoder(16, 1, kernel_size=4, stride=2, bias=False),
    ...     enhancer=masknet(1), num_spks=2)
    >>> mix, clean_mix = torch.randn(2, 101), torch.randn(2, 101)
    >>> out = model(mix, clean_mix)
    >>> out.est_sources.shape
    torch.Size([2, 101, 2])
    >>> out.enhanced_feats.shape == out.clean_feats.shape
    True
    >>> model.enhance(mix).shape
    torch.Size([2, 101])
    """

    def __init__(self, encoder, masknet, decoder, enhancer=None, num_spks=2):
        super().__init__()
        self.encoder = encoder
        self.enhancer = enhancer
        self.masknet = masknet
        self.decoder = decoder
        self.num_spks = num_spks

    def forward(self, mix, clean_mix=None):
        """Separates a noisy mixture and, for training, encodes its clean version.

        Arguments
        ---------
        mix : torch.Tensor
            The noisy mixture, shape B, T.
        clean_mix : torch.Tensor, optional
            The parallel clean mixture (sum of the clean sources), shape B, T.
            Gives ``clean_feats``, the SE target, when the model has an
            EnhanceNet.

        Returns
        -------
        SeparatorOutput
            The separated sources and, with an EnhanceNet, the enhanced
            features and the SE target.
        """
        self._check_waveform(mix, "mix")
        if clean_mix is not None and clean_mix.shape != mix.shape:
            raise ValueError(
                "UnifiedSeparator expects clean_mix of the same shape as mix "
                f"(B, T) = {tuple(mix.shape)}, got {tuple(clean_mix.shape)}"
            )
        _, enhanced = self.encode_enhance(mix)
        est_sources = self._separate_feats(enhanced, mix.shape[-1])
        if self.enhancer is None:
            return SeparatorOutput(est_sources)
        clean_feats = None if clean_mix is None else self.encoder(clean_mix)
        return SeparatorOutput(est_sources, enhanced, clean_feats)

    def encode_enhance(self, mix):
        """Encodes the mixture and applies the EnhanceNet's mask.

        Arguments
        ---------
        mix : torch.Tensor
            The noisy mixture, shape B, T.

        Returns
        -------
        mix_feats : torch.Tensor
            W = Encoder(mix), shape B, N, L.
        enhanced_feats : torch.Tensor
            E = W * m_e, shape B, N, L (W itself without an EnhanceNet).
        """
        self._check_waveform(mix, "mix")
        mix_feats = self.encoder(mix)  # B, N, L
        if self.enhancer is None:
            return mix_feats, mix_feats
        enhance_mask = self.enhancer(mix_feats)[0]  # B, N, L
        return mix_feats, mix_feats * enhance_mask

    def enhance(self, mix):
        """Returns the denoised mixture waveform, Decoder(E).

        Arguments
        ---------
        mix : torch.Tensor
            The noisy mixture, shape B, T.

        Returns
        -------
        torch.Tensor
            The enhanced mixture, shape B, T.
        """
        _, enhanced = self.encode_enhance(mix)
        return self._fit_length(self._decode(enhanced), mix.shape[-1])

    def separate(self, mix):
        """Separates a noisy mixture into its speakers.

        Arguments
        ---------
        mix : torch.Tensor
            The noisy mixture, shape B, T.

        Returns
        -------
        torch.Tensor
            The separated sources, shape B, T, S.
        """
        _, enhanced = self.encode_enhance(mix)
        return self._separate_feats(enhanced, mix.shape[-1])

    def _separate_feats(self, enhanced, length):
        """Masks E with the MaskNet's S masks and decodes every speaker."""
        masks = self.masknet(enhanced)  # S, B, N, L
        num_spks, batch = masks.shape[:2]
        if num_spks != self.num_spks:
            raise ValueError(
                f"UnifiedSeparator was built with num_spks={self.num_spks} but "
                f"its masknet returns {num_spks} masks"
            )
        sep_feats = (enhanced.unsqueeze(0) * masks).flatten(0, 1)  # S*B, N, L
        est_sources = self._decode(sep_feats).view(
            num_spks, batch, -1
        )  # S, B, T'
        return self._fit_length(est_sources.permute(1, 2, 0), length)  # B, T, S

    def _decode(self, feats):
        """Decodes B, N, L features to B, T' waveforms (the Decoder squeezes B=1)."""
        return self.decoder(feats).reshape(feats.shape[0], -1)

    @staticmethod
    def _fit_length(signal, length):
        """Zero-pads or crops the time axis (dim 1) to the mixture's length,
        as SpeechBrain's separation recipes do."""
        missing = length - signal.shape[1]
        if missing > 0:
            pad = (0, 0) * (signal.dim() - 2) + (0, missing)
            return F.pad(signal, pad)
        return signal[:, :length]

    @staticmethod
    def _check_waveform(signal, name):
        if signal.dim() != 2:
            raise ValueError(
                f"UnifiedSeparator expects {name} of shape (B, T) (a batch of "
                f"waveforms; use x.unsqueeze(0) for one signal), got shape "
                f"{tuple(signal.shape)}"
            )
