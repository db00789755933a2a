"""What several test files share: the repository root, the overrides that
turn hparams/demo.yaml into a model small enough for a test, and a tiny
unified network with its two objectives."""

import os

import torch
from gmsep.losses import EnhancedFeatureMSE, Objective, PITNegSISNR
from gmsep.model import UnifiedSeparator
from speechbrain.lobes.models.dual_path import (
    Decoder,
    Dual_Path_Model,
    Encoder,
    SBTransformerBlock,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_MODEL = {
    "N_encoder_out": 16,
    "d_model": 16,
    "nhead": 2,
    "d_ffn": 32,
    "chunk_size": 10,
    "masknet_layers": 1,
}


def tiny_masknet(num_spks):
    def block():
        return SBTransformerBlock(1, 16, 2, d_ffn=32, dropout=0.0)

    return Dual_Path_Model(
        16, 16, block(), block(), num_layers=1, K=8, num_spks=num_spks
    )


def tiny_separator():
    torch.manual_seed(0)
    return UnifiedSeparator(
        Encoder(kernel_size=4, out_channels=16),
        tiny_masknet(2),
        Decoder(16, 1, kernel_size=4, stride=2, bias=False),
        enhancer=tiny_masknet(1),
    )


OBJECTIVES = [
    Objective("ss", PITNegSISNR(threshold=None)),
    Objective("se", EnhancedFeatureMSE(), weight=0.1, auxiliary=True),
]
