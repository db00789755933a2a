"""What several test files share: the repository root and the overrides that
turn hparams/demo.yaml into a model small enough for a test."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_MODEL = {
    "N_encoder_out": 16,
    "d_model": 16,
    "nhead": 2,
    "d_ffn": 32,
    "chunk_size": 10,
    "masknet_layers": 1,
}
