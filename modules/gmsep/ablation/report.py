"""The report of an ablation: ``ablation.json``, ``ablation.md`` and the
validation curves ``valid_si_snr.png``, written together into the output
folder (each staged, replaced only when complete).

Only whole seeds are reported: a seed counts once every variant's run of it
has finished, so that every difference is paired.

Authors
 * gmsep contributors 2026
"""

import json
from pathlib import Path

from matplotlib.figure import Figure

from gmsep.ablation.runs import METRICS
from gmsep.ablation.statistics import (
    BOOTSTRAP_SAMPLES,
    mean_sd,
    paired_bootstrap,
    paired_differences,
)
from gmsep.data.outputs import staged_files

REPORT_FILES = ("ablation.json", "ablation.md", "valid_si_snr.png")
LABELS = {"si-snr_i": "SI-SNRi", "sdr_i": "SDRi"}


def summarize(spec, results, epochs, parameters, seconds, command):
    """The ablation's figures, as written to ``ablation.json``.

    Arguments
    ---------
    spec : gmsep.ablation.spec.AblationSpec
    results : dict
        Variant -> seed -> utterance ID -> {metric: value}, finished runs only.
    epochs : dict
        Variant -> seed -> ``runs.read_epochs`` of the run.
    parameters : dict
        Variant -> trainable parameters.
    seconds : dict
        Variant -> seed -> seconds the run took (where known).
    command : str
        The command line, for the record.

    Returns
    -------
    dict
    """
    seeds = [
        seed
        for seed in spec.seeds
        if all(seed in results.get(v.name, {}) for v in spec.variants)
    ]
    reference = {seed: results[spec.reference][seed] for seed in seeds}
    variants = []
    for variant in spec.variants:
        own = {seed: results[variant.name][seed] for seed in seeds}
        entry = {
            "name": variant.name,
            "description": variant.description,
            "hparams": Path(variant.hparams).name,
            "settings": variant.settings,
            "parameters": parameters[variant.name],
        }
        for metric in METRICS:
            per_seed = {
                seed: _mean([u[metric] for u in own[seed].values()])
                for seed in seeds
            }
            mean, sd = (
                mean_sd(list(per_seed.values())) if seeds else (None, None)
            )
            entry[metric] = {"mean": mean, "sd": sd, "per_seed": per_seed}
        entry["difference"] = (
            None
            if variant.name == spec.reference or not seeds
            else {
                metric: paired_bootstrap(
                    paired_differences(own, reference, metric)
                )
                for metric in METRICS
            }
        )
        steps = [
            e["seconds_per_step"]
            for seed in seeds
            for e in epochs[variant.name][seed]
            if e["seconds_per_step"] is not None
        ]
        entry["seconds_per_step"] = _mean(steps) if steps else None
        entry["run_seconds"] = {
            seed: seconds.get(variant.name, {}).get(seed) for seed in seeds
        }
        entry["valid_si_snr"] = {
            seed: [e["valid_si_snr"] for e in epochs[variant.name][seed]]
            for seed in seeds
        }
        variants.append(entry)
    return {
        "ablation": spec.path,
        "command": command,
        "reference": spec.reference,
        "seeds": seeds,
        "seeds_planned": list(spec.seeds),
        "test_utterances": len(next(iter(reference.values()))) if seeds else 0,
        "confidence_interval": (
            "95 % percentile bootstrap of the mean paired difference "
            f"(variant - reference), {BOOTSTRAP_SAMPLES} resamples of seeds "
            "and utterances, drawn independently"
        ),
        "variants": variants,
    }


def _mean(values):
    return sum(values) / len(values)


def write_report(summary, out):
    """Writes ``ablation.json``, ``ablation.md`` and ``valid_si_snr.png``
    into the folder ``out``.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    targets = [Path(out) / name for name in REPORT_FILES]
    with staged_files(targets) as (json_file, markdown_file, plot_file):
        json_file.write_text(
            json.dumps(summary, indent=2) + "\n", encoding="utf-8"
        )
        markdown_file.write_text(markdown(summary), encoding="utf-8")
        plot_validation(summary, plot_file)
    return targets


def markdown(summary):
    """The report as a Markdown page: the table, then how to read it."""
    seeds = summary["seeds"]
    reference = summary["reference"]
    lines = [
        f"# Ablation: {summary['ablation']}",
        "",
        f"Command: `{summary['command']}`",
        "",
        f"Seeds reported: {', '.join(map(str, seeds)) or 'none yet'} "
        f"(planned: {', '.join(map(str, summary['seeds_planned']))}); "
        f"test utterances: {summary['test_utterances']}.",
        "",
        "| variant | what | params | SI-SNRi (dB) | SDRi (dB) | SI-SNRi per seed "
        f"| Δ SI-SNRi vs {reference} [95 % CI] | Δ SDRi [95 % CI] | s/step |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for v in summary["variants"]:
        per_seed = " / ".join(
            f"{value:.2f}" for value in v["si-snr_i"]["per_seed"].values()
        )
        differences = [
            "(reference)"
            if v["difference"] is None
            else _interval(v["difference"][m])
            for m in METRICS
        ]
        step = v["seconds_per_step"]
        lines.append(
            f"| {v['name']} | {v['description']} | {v['parameters'] / 1e6:.3f} M "
            f"| {_mean_sd(v['si-snr_i'])} | {_mean_sd(v['sdr_i'])} | {per_seed} "
            f"| {differences[0]} | {differences[1]} "
            f"| {'' if step is None else f'{step:.3f}'} |"
        )
    lines += [
        "",
        "How to read it: means ± standard deviation over the seeds; Δ is the "
        "mean paired difference to the reference (same seed, same test "
        f"utterance) with its {summary['confidence_interval']}. An interval "
        "that contains 0 shows no difference: the variant is neither better "
        "nor worse than the reference at this budget. With few seeds the "
        "interval is coarse; the per-seed values show how far training "
        "randomness alone moves a result. s/step: training seconds per "
        "optimizer step, mean over epochs and seeds (runs in parallel "
        "share the machine, so compare it only within one ablation).",
        "",
        "![validation SI-SNR per epoch](valid_si_snr.png)",
        "",
    ]
    return "\n".join(lines)


def _mean_sd(entry):
    if entry["mean"] is None:
        return ""
    return f"{entry['mean']:.2f} ± {entry['sd']:.2f}"


def _interval(difference):
    low, high = difference["ci95"]
    return f"{difference['mean']:+.2f} [{low:+.2f}, {high:+.2f}]"


def plot_validation(summary, path):
    """Validation SI-SNR per epoch: each variant's mean over seeds (line),
    every seed (faint)."""
    figure = Figure(figsize=(7, 4.2), dpi=100)
    axes = figure.subplots()
    cycle = [f"C{i}" for i in range(10)]
    for index, variant in enumerate(summary["variants"]):
        colour = cycle[index % len(cycle)]
        curves = [c for c in variant["valid_si_snr"].values() if c]
        for curve in curves:
            axes.plot(
                range(1, len(curve) + 1), curve, color=colour, alpha=0.25, lw=1
            )
        if curves:
            length = min(len(c) for c in curves)
            mean = [_mean([c[i] for c in curves]) for i in range(length)]
            axes.plot(
                range(1, length + 1),
                mean,
                color=colour,
                marker="o",
                lw=2,
                label=variant["name"],
            )
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation SI-SNR (dB)")
    axes.set_title("Validation SI-SNR: mean over seeds (faint: each seed)")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(alpha=0.3)
    if summary["variants"]:
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
