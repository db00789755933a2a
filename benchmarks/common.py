"""What the benchmarks share: model configurations, a training batch, a real
training step, interleaved timing and peak-memory readings.

Every figure the benchmarks report is a ratio of two contenders timed in the
same process, interleaved (A, B, A, B, ...) after a warm-up, so that the
machine's drift and its run-to-run variation (easily +-50 % on a shared CPU)
cancel out; the median over the rounds of the per-round ratio is reported.

Authors
 * gmsep contributors 2026
"""

import os
import resource
import statistics
import sys
import time

import torch
from gmsep.training.experiment import included_sections, load_experiment
from torch.utils.flop_counter import FlopCounterMode

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # recipes.* is referenced by the hparams
    sys.path.insert(0, REPO_ROOT)

UNIFIED_HPARAMS = os.path.join(
    REPO_ROOT, "hparams", "sepformer-gm-libri2mix.yaml"
)
SEPFORMER_HPARAMS = os.path.join(
    REPO_ROOT, "hparams", "sepformer-libri2mix.yaml"
)

# Overrides of both hparams files per configuration; "paper" is the files as
# they are. "small" and "tiny" keep the EnhanceNet a fraction of the MaskNet.
CONFIGS = {
    "paper": {},
    "small": {
        "N_encoder_out": 128,
        "d_model": 128,
        "nhead": 4,
        "d_ffn": 512,
        "masknet_blocks": 1,
        "masknet_layers": 4,
        "enhancer_blocks": 1,
        "enhancer_layers": 1,
    },
    "tiny": {
        "N_encoder_out": 32,
        "d_model": 32,
        "nhead": 2,
        "d_ffn": 64,
        "chunk_size": 50,
        "masknet_blocks": 1,
        "masknet_layers": 2,
        "enhancer_blocks": 1,
        "enhancer_layers": 1,
    },
}


def load_hparams(hparams_file, config, output_folder, **overrides):
    """Loads an hparams file with a benchmark configuration.

    Loading builds the model but touches no data: the data folder is a dummy
    and speed perturbation is off, so that every contender sees the same
    input at every repetition.

    Arguments
    ---------
    hparams_file : str
        One of the project's hparams files.
    config : str
        A key of ``CONFIGS``.
    output_folder : str
        Where the hparams' checkpointer may create its (empty) folder: a
        temporary folder, so that benchmarks leave nothing behind.
    **overrides
        Further hparams overrides.

    Returns
    -------
    dict
        The loaded hparams.
    """
    if config not in CONFIGS:
        raise ValueError(
            f"Unknown benchmark config {config!r}; expected one of {list(CONFIGS)}"
        )
    keys_of_file = _top_level_keys(hparams_file)
    config_overrides = {
        key: value
        for key, value in CONFIGS[config].items()
        if key in keys_of_file
    }
    all_overrides = {
        "data_folder": os.devnull,
        "output_folder": output_folder,
        "use_speedperturb": False,
        **config_overrides,
        **overrides,
    }
    return load_experiment(hparams_file, all_overrides)[0]


def _top_level_keys(hparams_file):
    """The settings of an experiment file and of its sections (an override
    of a setting it lacks would be an error: the baseline has no enhancer
    keys)."""
    with open(hparams_file, encoding="utf-8") as fin:
        keys = {
            line.split(":", 1)[0]
            for line in fin
            if line[:1].isalpha() and ":" in line
        }
    for section_keys in included_sections(hparams_file).values():
        keys |= section_keys
    return keys


def count_parameters(module):
    """Number of trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def make_brain(hparams, device="cpu", precision="fp32"):
    """A ``NoiseRobustSeparationBrain`` ready for ``fit_batch``.

    Arguments
    ---------
    hparams : dict
        Loaded hparams (see ``load_hparams``).
    device : str
        "cpu" or "cuda".
    precision : str
        "fp32", "bf16" or "fp16".

    Returns
    -------
    gmsep.training.brain.NoiseRobustSeparationBrain
    """
    from gmsep.training.brain import NoiseRobustSeparationBrain

    brain = NoiseRobustSeparationBrain(
        modules=hparams["modules"],
        opt_class=hparams["optimizer"],
        hparams=hparams,
        run_opts={"device": device, "precision": precision},
        checkpointer=None,
    )
    brain.on_fit_start()
    brain.modules.train()
    return brain


def make_batch(num_spks, seconds, sample_rate=8000, seed=0):
    """One training item as the data pipeline delivers it (batch size 1).

    Arguments
    ---------
    num_spks : int
        Number of sources S.
    seconds : float
        Duration of the item.
    sample_rate : int
        Sampling rate (Hz).
    seed : int
        Seed of the random signals.

    Returns
    -------
    speechbrain.dataio.batch.PaddedBatch
        With ``mix_sig``, ``s1_sig`` ... ``sS_sig``, ``noise_sig`` and
        ``clean_sig``.
    """
    from speechbrain.dataio.batch import PaddedBatch

    generator = torch.Generator().manual_seed(seed)
    length = int(seconds * sample_rate)
    sources = 0.1 * torch.randn(num_spks, length, generator=generator)
    noise = 0.05 * torch.randn(length, generator=generator)
    clean_mix = sources.sum(0)
    item = {
        "id": "benchmark",
        "mix_sig": clean_mix + noise,
        "noise_sig": noise,
        "clean_sig": clean_mix,
        **{f"s{i + 1}_sig": sources[i] for i in range(num_spks)},
    }
    return PaddedBatch([item])


def synchronize(device):
    """Waits for the device's queued work, so that a timer measures it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def interleaved_times(contenders, repeats, warmup=1, device="cpu"):
    """Times callables in turn: warm-up rounds, then ``repeats`` rounds.

    Arguments
    ---------
    contenders : dict
        Name -> callable without arguments.
    repeats : int
        Timed rounds; every round calls every contender once, in order.
    warmup : int
        Untimed rounds before.
    device : str
        The device whose work is awaited after each call.

    Returns
    -------
    dict
        Name -> list of seconds, one per timed round.

    Example
    -------
    >>> times = interleaved_times({"a": lambda: None, "b": lambda: None}, 3)
    >>> sorted(times), len(times["a"])
    (['a', 'b'], 3)
    """
    times = {name: [] for name in contenders}
    for round_index in range(warmup + repeats):
        for name, run in contenders.items():
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def ratio_summary(times, numerator, denominator, target=None):
    """The ratio of two contenders' times, round by round.

    Both ran in every round, one right after the other, so their ratio in a
    round is little affected by the machine's drift; the median over the
    rounds is the reported ratio.

    Arguments
    ---------
    times : dict
        Name -> list of seconds (from ``interleaved_times``).
    numerator, denominator : str
        The two contenders.
    target : float, optional
        The ratio not to exceed.

    Returns
    -------
    dict
        ``numerator``/``denominator`` names, their median seconds, ``ratio``
        (median of the per-round ratios), ``pair_ratios`` (per round),
        ``target`` and ``met``.

    Example
    -------
    >>> summary = ratio_summary({"a": [2.0, 2.2], "b": [1.0, 1.0]}, "a", "b", 1.5)
    >>> round(summary["ratio"], 2), summary["met"]
    (2.1, False)
    """
    pair_ratios = [
        a / b for a, b in zip(times[numerator], times[denominator], strict=True)
    ]
    ratio = statistics.median(pair_ratios)
    return {
        "numerator": numerator,
        "denominator": denominator,
        "numerator_s": statistics.median(times[numerator]),
        "denominator_s": statistics.median(times[denominator]),
        "ratio": ratio,
        "pair_ratios": pair_ratios,
        "target": target,
        "met": None if target is None else ratio <= target,
    }


def counted_gflop(run):
    """Runs ``run()`` once and counts the arithmetic it dispatches.

    ``torch.utils.flop_counter`` counts matrix products and convolutions
    (forward and backward); element-wise work is not counted.

    Returns
    -------
    total : float
        GFLOP.
    by_operator : dict
        Operator name -> GFLOP.
    """
    with FlopCounterMode(display=False) as counter:
        run()
    by_operator = {
        str(op): count / 1e9
        for op, count in counter.get_flop_counts().get("Global", {}).items()
    }
    return counter.get_total_flops() / 1e9, by_operator


PAGE_BYTES = resource.getpagesize()


def minor_page_faults():
    """Minor page faults of this process so far: pages the kernel mapped in
    on first touch, e.g. memory the allocator had given back and took again."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def peak_rss_bytes():
    """Peak resident memory of this process so far (bytes; Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
