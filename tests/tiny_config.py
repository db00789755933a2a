"""What several test files share: the repository root, the overrides that
turn hparams/demo.yaml into a model small enough for a test, a tiny unified
network with its two objectives, and a tiny experiment folder as train.py
leaves it."""

import os

import torch
from gmsep.losses import EnhancedFeatureMSE, Objective, PITNegSISNR
from gmsep.model import UnifiedSeparator
from gmsep.training.experiment import load_experiment
from hyperpyyaml import resolve_references
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


def make_experiment(root, enhancer=True, num_spks=2, test_results=True, seed=0):
    """Writes an experiment folder as train.py leaves it, from the demo
    recipe (or the SepFormer-alone one without enhancer) at tiny sizes.

    Two checkpoints: the best (validation si-snr -5) and a later, worse one
    (-1) with other weights. Returns (folder, the best UnifiedSeparator).
    """
    exp_dir = root / "experiment"
    recipe = "demo.yaml" if enhancer else "sepformer-libri2mix.yaml"
    hparams_file = os.path.join(REPO, "hparams", recipe)
    overrides = {
        **TINY_MODEL,
        # the paper's frame rate, chunks of 50 frames
        "kernel_size": 16,
        "kernel_stride": 8,
        "chunk_size": 50,
        "output_folder": str(exp_dir),
        "data_folder": str(root / "data"),
        "num_spks": num_spks,
        "seed": seed,
    }
    hparams, routed = load_experiment(hparams_file, overrides)
    exp_dir.mkdir(parents=True, exist_ok=True)
    with open(hparams_file, encoding="utf-8") as fin:
        resolved = resolve_references(fin, routed).getvalue()
    (exp_dir / "hyperparams.yaml").write_text(resolved)
    separator = hparams["separator"].eval()
    checkpointer = hparams["checkpointer"]
    checkpointer.add_recoverables(hparams["modules"])  # as the Brain does
    checkpointer.save_checkpoint(meta={"si-snr": -5.0})
    best_state = {k: v.clone() for k, v in separator.state_dict().items()}
    with torch.no_grad():
        for param in separator.parameters():
            param.add_(0.5 * torch.randn_like(param))
    checkpointer.save_checkpoint(meta={"si-snr": -1.0})
    separator.load_state_dict(best_state)
    if test_results:
        (exp_dir / "test_results.csv").write_text(
            "snt_id,sdr,sdr_i,si-snr,si-snr_i\n"
            "a,10.0,9.0,8.0,7.0\nb,12.0,11.0,10.0,9.0\n"
            "avg,11.0,10.0,9.0,8.0\n"
        )
    return exp_dir, separator
