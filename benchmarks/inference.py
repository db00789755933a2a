"""Cost of separation at inference: the unified model against SepFormer.

Two ready-to-use interfaces separate the same noisy mixture, interleaved,
each under ``torch.inference_mode``:

* ``unified``: gmsep's ``NoiseRobustSeparation.separate_batch`` on the
  unified model (Encoder, EnhanceNet, MaskNet, Decoder);
* ``sepformer``: SpeechBrain's own ``SepformerSeparation.separate_batch`` on
  an Encoder, MaskNet and Decoder of the same sizes (the baseline hparams).

Both interfaces are built in memory from freshly initialised modules: the
speed of a network does not depend on its weights.

Authors
 * gmsep contributors 2026
"""

import torch
from common import (
    SEPFORMER_HPARAMS,
    UNIFIED_HPARAMS,
    counted_gflop,
    interleaved_times,
    load_hparams,
    ratio_summary,
)
from gmsep.inference.pretrained import NoiseRobustSeparation
from speechbrain.inference.separation import SepformerSeparation

INFERENCE_TARGET = 1.15  # unified / sepformer


def build_interfaces(config, output_folder, device="cpu"):
    """The two separation interfaces of a benchmark configuration.

    Arguments
    ---------
    config : str
        A benchmark configuration ("paper", "small", "tiny").
    output_folder : str
        A temporary folder for the hparams' checkpointer.
    device : str
        "cpu" or "cuda".

    Returns
    -------
    unified : gmsep.inference.pretrained.NoiseRobustSeparation
    sepformer : speechbrain.inference.separation.SepformerSeparation
    """
    run_opts = {"device": device}
    unified_hparams = load_hparams(UNIFIED_HPARAMS, config, output_folder)
    separator = unified_hparams["separator"]
    unified = NoiseRobustSeparation(
        modules={
            name: getattr(separator, name)
            for name in ("encoder", "enhancer", "masknet", "decoder")
        },
        hparams={
            "sample_rate": unified_hparams["sample_rate"],
            "num_spks": unified_hparams["num_spks"],
            "separator": separator,
        },
        run_opts=run_opts,
    )
    baseline_hparams = load_hparams(SEPFORMER_HPARAMS, config, output_folder)
    sepformer = SepformerSeparation(
        modules={
            name: baseline_hparams[name]
            for name in ("encoder", "masknet", "decoder")
        },
        hparams={
            "sample_rate": baseline_hparams["sample_rate"],
            "num_spks": baseline_hparams["num_spks"],
        },
        run_opts=run_opts,
    )
    return unified, sepformer


def inference_ratio(
    config, seconds, repeats, warmup, output_folder, device="cpu"
):
    """Times the two interfaces on one mixture, interleaved.

    Arguments
    ---------
    config : str
        A benchmark configuration.
    seconds : float
        Duration of the mixture (8 kHz).
    repeats : int
        Timed rounds.
    warmup : int
        Untimed rounds before.
    output_folder : str
        A temporary folder for the hparams' checkpointer.
    device : str
        "cpu" or "cuda".

    Returns
    -------
    dict
        ``unified_vs_sepformer`` (see ``common.ratio_summary``), ``times``,
        and ``gflop``: the counted arithmetic of one separation per interface
        (matrix products and convolutions) and their ratio.
    """
    unified, sepformer = build_interfaces(config, output_folder, device)
    mix = 0.1 * torch.randn(
        1,
        int(seconds * unified.sample_rate),
        generator=torch.Generator().manual_seed(0),
    ).to(device)

    def separate(interface):
        def run():
            with torch.inference_mode():
                est_sources = interface.separate_batch(mix)
            if est_sources.shape != (*mix.shape, interface.hparams.num_spks):
                raise RuntimeError(
                    f"{type(interface).__name__}.separate_batch returned shape "
                    f"{tuple(est_sources.shape)} for a mixture of {tuple(mix.shape)}"
                )

        return run

    contenders = {
        "unified": separate(unified),
        "sepformer": separate(sepformer),
    }
    times = interleaved_times(contenders, repeats, warmup, device)
    gflop = {name: counted_gflop(run)[0] for name, run in contenders.items()}
    gflop["ratio"] = gflop["unified"] / gflop["sepformer"]
    return {
        "unified_vs_sepformer": ratio_summary(
            times, "unified", "sepformer", INFERENCE_TARGET
        ),
        "times": times,
        "gflop": gflop,
    }
