"""What several test files share: the repository root, the overrides that
turn hparams/demo.yaml into a model small enough for a test, a tiny unified
network with its two objectives, and a tiny experiment folder as train.py
leaves it."""

import os

import torch
from gmsep.losses import EnhancedFeatureMSE, Objective, PITNegSISNR
from gmsep.model import UnifiedSeparator
from hyperpyyaml import load_hyperpyyaml, resolve_references
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


# A tiny experiment modeled on hparams/demo.yaml: the model section as there,
# training-only entries (objectives, GM, optimizer, checkpointer) included so
# that the export has to leave them out.
EXPERIMENT_YAML = """
seed: 1234
__set_seed: !apply:torch.manual_seed [!ref <seed>]
experiment_name: tiny
output_folder: !PLACEHOLDER
save_folder: !ref <output_folder>/save
data_folder: !PLACEHOLDER
num_spks: 2
sample_rate: 8000
train_data: !ref <save_folder>/libri<num_spks>mix_train-360.csv
valid_data: !ref <save_folder>/libri<num_spks>mix_dev.csv
test_data: !ref <save_folder>/libri<num_spks>mix_test.csv
speed_perturb_remix: !new:gmsep.data.augment.SpeedPerturbRemix
    sample_rate: !ref <sample_rate>
    speeds: [95, 100, 105]
N_epochs: 2
lr: 0.001
se_weight: 0.1
objectives:
    - !new:gmsep.losses.Objective
        name: separation
        criterion: !new:gmsep.losses.PITNegSISNR
            threshold: 30
gm_mode: project
gradient_modulation: !new:gmsep.gradient_modulation.GradientModulation
    mode: !ref <gm_mode>

use_enhancer: True
kernel_size: 16
kernel_stride: 8
N_encoder_out: 16
d_model: 16
nhead: 2
d_ffn: 32
chunk_size: 50
encoder: !new:speechbrain.lobes.models.dual_path.Encoder
    kernel_size: !ref <kernel_size>
    out_channels: !ref <N_encoder_out>
enhancer_intra: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: !ref <d_model>
    nhead: !ref <nhead>
    d_ffn: !ref <d_ffn>
    dropout: 0
    use_positional_encoding: True
    norm_before: True
enhancer_inter: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: !ref <d_model>
    nhead: !ref <nhead>
    d_ffn: !ref <d_ffn>
    dropout: 0
    use_positional_encoding: True
    norm_before: True
enhancer: !new:speechbrain.lobes.models.dual_path.Dual_Path_Model
    num_spks: 1
    in_channels: !ref <N_encoder_out>
    out_channels: !ref <N_encoder_out>
    num_layers: 1
    K: !ref <chunk_size>
    intra_model: !ref <enhancer_intra>
    inter_model: !ref <enhancer_inter>
    norm: ln
    linear_layer_after_inter_intra: False
    skip_around_intra: True
masknet_intra: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: !ref <d_model>
    nhead: !ref <nhead>
    d_ffn: !ref <d_ffn>
    dropout: 0
    use_positional_encoding: True
    norm_before: True
masknet_inter: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: !ref <d_model>
    nhead: !ref <nhead>
    d_ffn: !ref <d_ffn>
    dropout: 0
    use_positional_encoding: True
    norm_before: True
masknet: !new:speechbrain.lobes.models.dual_path.Dual_Path_Model
    num_spks: !ref <num_spks>
    in_channels: !ref <N_encoder_out>
    out_channels: !ref <N_encoder_out>
    num_layers: 1
    K: !ref <chunk_size>
    intra_model: !ref <masknet_intra>
    inter_model: !ref <masknet_inter>
    norm: ln
    linear_layer_after_inter_intra: False
    skip_around_intra: True
decoder: !new:speechbrain.lobes.models.dual_path.Decoder
    in_channels: !ref <N_encoder_out>
    out_channels: 1
    kernel_size: !ref <kernel_size>
    stride: !ref <kernel_stride>
    bias: False
separator: !new:gmsep.model.UnifiedSeparator
    encoder: !ref <encoder>
    enhancer: ENHANCER
    masknet: !ref <masknet>
    decoder: !ref <decoder>
    num_spks: !ref <num_spks>
modules:
    separator: !ref <separator>
optimizer: !name:torch.optim.Adam
    lr: !ref <lr>
epoch_counter: !new:speechbrain.utils.epoch_loop.EpochCounter
    limit: !ref <N_epochs>
checkpointer: !new:speechbrain.utils.checkpoints.Checkpointer
    checkpoints_dir: !ref <save_folder>
    recoverables:
        separator: !ref <separator>
        counter: !ref <epoch_counter>
"""


def make_experiment(root, enhancer=True, num_spks=2, test_results=True, seed=0):
    """Writes an experiment folder as train.py leaves it.

    Two checkpoints: the best (validation si-snr -5) and a later, worse one
    (-1) with other weights. Returns (folder, the best UnifiedSeparator).
    """
    exp_dir = root / "experiment"
    template = EXPERIMENT_YAML.replace(
        "ENHANCER", "!ref <enhancer>" if enhancer else "null"
    )
    overrides = {
        "output_folder": str(exp_dir),
        "data_folder": str(root / "data"),
        "num_spks": num_spks,
        "seed": seed,
    }
    hparams = load_hyperpyyaml(template, overrides)
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "hyperparams.yaml").write_text(
        resolve_references(template, overrides).getvalue()
    )
    separator = hparams["separator"].eval()
    checkpointer = hparams["checkpointer"]
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
