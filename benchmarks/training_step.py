"""Cost of a training step: gradient modulation and the unified model.

A step is ``NoiseRobustSeparationBrain.fit_batch``, exactly as in training:
forward, the weighted objectives, the backward pass(es) through the gradient
modulation, clipping at ``max_grad_norm`` and the Adam update. Three
contenders, timed interleaved on the same batch:

* ``unified_gm``: the unified model with GM (mode "project", the paper);
* ``unified_plain``: the same model (the very same modules) with the plain
  multi-task sum (mode "none": one backward of SS + SE);
* ``sepformer``: SepFormer alone (the baseline hparams: SS loss only).

Run as a script, it measures the peak memory of the steps of one model in a
process of its own, so that the peaks of different models do not mix::

    python benchmarks/training_step.py --memory unified --config paper

Authors
 * gmsep contributors 2026
"""

import argparse
import dataclasses
import json
import statistics
import tempfile
import time

import speechbrain as sb
import torch
from common import (
    PAGE_BYTES,
    SEPFORMER_HPARAMS,
    UNIFIED_HPARAMS,
    count_parameters,
    counted_gflop,
    interleaved_times,
    load_hparams,
    make_batch,
    make_brain,
    minor_page_faults,
    peak_rss_bytes,
    ratio_summary,
    synchronize,
)
from gmsep.gradient_modulation import GradientModulation

MODELS = {"unified": UNIFIED_HPARAMS, "sepformer": SEPFORMER_HPARAMS}
GM_TARGET = 1.10  # unified_gm / unified_plain
UNIFIED_TARGET = 1.20  # unified_gm / sepformer


@dataclasses.dataclass
class Contenders:
    """The three contenders' training steps on one shared batch.

    Attributes
    ----------
    steps : dict
        ``unified_gm``, ``unified_plain``, ``sepformer`` -> callable running
        one ``fit_batch``.
    params : dict
        Trainable parameters of ``unified`` and ``sepformer``.
    unified : gmsep.training.brain.NoiseRobustSeparationBrain
        The unified model's Brain (GM mode "project").
    batch : speechbrain.dataio.batch.PaddedBatch
        The training item every step sees.
    """

    steps: dict
    params: dict
    unified: object
    batch: object


def make_contenders(config, seconds, output_folder, device="cpu"):
    """Builds the unified model and SepFormer alone, and their steps.

    Arguments
    ---------
    config : str
        A benchmark configuration ("paper", "small", "tiny").
    seconds : float
        Duration of the training item (batch size 1).
    output_folder : str
        A temporary folder for the hparams' checkpointer.
    device : str
        "cpu" or "cuda".

    Returns
    -------
    Contenders
    """
    unified_hparams = load_hparams(UNIFIED_HPARAMS, config, output_folder)
    sepformer_hparams = load_hparams(SEPFORMER_HPARAMS, config, output_folder)
    unified = make_brain(unified_hparams, device)
    sepformer = make_brain(sepformer_hparams, device)
    batch = make_batch(unified_hparams["num_spks"], seconds)

    projecting = unified.hparams.gradient_modulation
    if projecting.mode != "project":
        raise ValueError(
            f"{UNIFIED_HPARAMS}: expected gm_mode 'project', got {projecting.mode!r}"
        )
    plain = GradientModulation("none")

    def unified_step(gradient_modulation):
        def step():
            unified.hparams.gradient_modulation = gradient_modulation
            unified.fit_batch(batch)
            # the paper's GM in place between steps (see gm_step_breakdown)
            unified.hparams.gradient_modulation = projecting

        return step

    steps = {
        "unified_gm": unified_step(projecting),
        "unified_plain": unified_step(plain),
        "sepformer": lambda: sepformer.fit_batch(batch),
    }
    params = {
        "unified": count_parameters(unified.modules),
        "sepformer": count_parameters(sepformer.modules),
    }
    return Contenders(steps, params, unified, batch)


def training_step_ratios(contenders, repeats, warmup, device="cpu"):
    """Times the three contenders' training steps, interleaved, and counts
    their arithmetic in the first untimed round.

    ``torch.utils.flop_counter`` counts the matrix products and convolutions
    (forward and backward) that a step dispatches; element-wise work is not
    counted. The counts do not depend on the machine or its load, so their
    ratios are what the timed ratios would be if time were arithmetic alone.

    Arguments
    ---------
    contenders : Contenders
        From :func:`make_contenders`.
    repeats : int
        Timed rounds.
    warmup : int
        Untimed rounds before; the first (always run) counts the arithmetic.
    device : str
        "cpu" or "cuda".

    Returns
    -------
    dict
        ``gm_overhead`` and ``unified_vs_sepformer`` (see
        ``common.ratio_summary``), ``params`` (trainable parameters per
        model), ``times`` (seconds per contender and round),
        ``page_faults_mib`` (median memory newly mapped by the process per
        step: what the host allocator gave back to the system and took
        again) and ``flops``: ``gflop`` (contender -> GFLOP per step),
        ``by_operator`` (contender -> operator -> GFLOP) and the same two
        ratios in counted arithmetic.
    """
    gflop, by_operator = {}, {}
    for name, step in contenders.steps.items():
        gflop[name], by_operator[name] = counted_gflop(step)
    faults = {name: [] for name in contenders.steps}

    def counting_faults(name, step):
        def run():
            before = minor_page_faults()
            step()
            faults[name].append(minor_page_faults() - before)

        return run

    untimed = max(warmup - 1, 0)
    times = interleaved_times(
        {
            name: counting_faults(name, step)
            for name, step in contenders.steps.items()
        },
        repeats,
        untimed,
        device,
    )
    return {
        "gm_overhead": ratio_summary(
            times, "unified_gm", "unified_plain", GM_TARGET
        ),
        "unified_vs_sepformer": ratio_summary(
            times, "unified_gm", "sepformer", UNIFIED_TARGET
        ),
        "params": contenders.params,
        "times": times,
        "page_faults_mib": {
            name: statistics.median(counts[untimed:]) * PAGE_BYTES / 2**20
            for name, counts in faults.items()
        },
        "flops": {
            "gflop": gflop,
            "by_operator": by_operator,
            "gm_overhead": gflop["unified_gm"] / gflop["unified_plain"],
            "unified_vs_sepformer": gflop["unified_gm"] / gflop["sepformer"],
        },
    }


def gm_step_breakdown(brain, batch, repeats, warmup=1, device="cpu"):
    """Where the time of a GM training step goes, part by part.

    The parts of ``fit_batch`` with GM (mode "project") are run one by one,
    as ``GradientModulation.backward`` runs them, with a timer around each.

    Arguments
    ---------
    brain : gmsep.training.brain.NoiseRobustSeparationBrain
        The unified model's Brain, with GM mode "project" (e.g.
        ``Contenders.unified``).
    batch : speechbrain.dataio.batch.PaddedBatch
        The training item.
    repeats : int
        Timed steps.
    warmup : int
        Untimed steps before (none needed on a Brain that has trained).
    device : str
        "cpu" or "cuda".

    Returns
    -------
    dict
        Part -> median seconds: ``forward`` (with the losses),
        ``se_backward`` (the SE gradient of the Encoder and EnhanceNet),
        ``ss_backward`` (the full SS backward), ``gm_combine`` and
        ``clip_adam``; ``total``.
    """
    shared = brain.shared_parameters()
    gradient_modulation = brain.hparams.gradient_modulation
    if gradient_modulation.mode != "project":
        raise ValueError(
            f"expected gm_mode 'project', got {gradient_modulation.mode!r}"
        )
    parts = {}

    def timed(name, run, *args, **kwargs):
        synchronize(device)
        start = time.perf_counter()
        result = run(*args, **kwargs)
        synchronize(device)
        parts.setdefault(name, []).append(time.perf_counter() - start)
        return result

    def forward():
        with brain.training_ctx:
            predictions = brain.compute_forward(batch, sb.Stage.TRAIN)
            return brain.compute_task_losses(predictions)

    for step in range(warmup + repeats):
        if step == warmup:
            parts.clear()
        main_loss, aux_loss = timed("forward", forward)
        aux_grads = timed(
            "se_backward",
            torch.autograd.grad,
            aux_loss,
            shared,
            retain_graph=True,
        )
        timed("ss_backward", main_loss.backward)
        main_grads = [p.grad for p in shared]
        combined = timed(
            "gm_combine", gradient_modulation.combine, main_grads, aux_grads
        )
        for p, grad in zip(shared, combined, strict=True):
            p.grad = grad
        timed("clip_adam", brain.optimizers_step)
    medians = {name: statistics.median(times) for name, times in parts.items()}
    medians["total"] = sum(medians.values())
    return medians


def training_throughput(
    config, seconds, repeats, warmup, output_folder, precisions=("fp32", "bf16")
):
    """Training throughput of the unified model (GM) on the GPU per precision.

    Arguments
    ---------
    config : str
        A benchmark configuration.
    seconds : float
        Duration of the training item (batch size 1).
    repeats : int
        Timed rounds.
    warmup : int
        Untimed rounds before.
    output_folder : str
        A temporary folder for the hparams' checkpointer.
    precisions : sequence of str
        Training precisions to compare, timed interleaved.

    Returns
    -------
    dict
        Precision -> ``step_s`` (median seconds per step),
        and ``audio_s_per_s`` (seconds of audio trained on per second).
    """
    brains = {}
    for precision in precisions:
        hparams = load_hparams(UNIFIED_HPARAMS, config, output_folder)
        brains[precision] = make_brain(hparams, "cuda", precision)
    batch = make_batch(hparams["num_spks"], seconds)
    times = interleaved_times(
        {
            precision: (lambda brain=brain: brain.fit_batch(batch))
            for precision, brain in brains.items()
        },
        repeats,
        warmup,
        "cuda",
    )
    return {
        precision: {
            "step_s": statistics.median(times[precision]),
            "audio_s_per_s": seconds / statistics.median(times[precision]),
        }
        for precision in precisions
    }


def training_step_memory(model, config, seconds, steps=2):
    """Peak resident memory of training steps, over the model's own footprint.

    Meant to run in a fresh process (``ru_maxrss`` is a process-wide peak).

    Arguments
    ---------
    model : str
        "unified" (with GM) or "sepformer".
    config : str
        A benchmark configuration.
    seconds : float
        Duration of the training item.
    steps : int
        Training steps to run (the first one also creates Adam's state).

    Returns
    -------
    dict
        ``model``, ``baseline_bytes`` (peak after building model, optimiser
        and batch), ``peak_bytes`` and ``step_bytes`` (their difference).
    """
    with tempfile.TemporaryDirectory() as output_folder:
        hparams = load_hparams(MODELS[model], config, output_folder)
    brain = make_brain(hparams)
    batch = make_batch(hparams["num_spks"], seconds)
    baseline = peak_rss_bytes()
    for _ in range(steps):
        brain.fit_batch(batch)
    peak = peak_rss_bytes()
    return {
        "model": model,
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "step_bytes": peak - baseline,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--memory",
        choices=sorted(MODELS),
        required=True,
        help="measure the peak memory of this model's training steps",
    )
    parser.add_argument("--config", default="paper")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    result = training_step_memory(
        args.memory, args.config, args.seconds, args.steps
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
