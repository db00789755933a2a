"""The ``gmsep`` command: separate files, evaluate on a test CSV, export.

::

    gmsep separate mix.wav ... --model pretrained/demo --out separated/
    gmsep evaluate --model pretrained/demo --csv test.csv --out eval/ --plots 3
    gmsep export results/demo/1234 --out pretrained/demo

(``python -m gmsep ...`` is the same.) A user error (missing or unreadable
file, incomplete model folder, output that exists) prints one line naming
the file or setting and exits with code 2.

Authors
 * gmsep contributors 2026
"""

import argparse
import csv
import importlib.util
import json
import logging
import math
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from gmsep.data.audio import DataError, check_audio_file
from gmsep.data.columns import ID, MIX, source_columns, wav_column
from gmsep.evaluation.metrics import separation_metrics
from gmsep.evaluation.plots import plot_histogram, plot_spectrograms
from gmsep.evaluation.results import average_results, write_results
from gmsep.inference.chunking import (
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_OVERLAP_SECONDS,
    align_speakers,
    chunk_starts,
)
from gmsep.inference.export import ExportError, export_pretrained
from gmsep.inference.pretrained import (
    NoiseRobustSeparation,
    PretrainedFolderError,
)
from gmsep.training.legacy_checkpoints import (
    LegacyCheckpointError,
    upgrade_checkpoints,
)

USER_ERRORS = (
    DataError,
    PretrainedFolderError,
    ExportError,
    LegacyCheckpointError,
)
EXIT_USER_ERROR = 2


class UsageError(ValueError):
    """A command-line setting or an output file the user must change."""


def check_input_audio(path):
    """Checks from the header that an input audio file is readable and not empty.

    Any sample rate and channel count is accepted: the model resamples and
    downmixes (see :func:`gmsep.data.audio.read_audio`).

    Arguments
    ---------
    path : pathlib.Path
        The file.

    Returns
    -------
    speechbrain.dataio.audio_io.AudioInfo
        The header of the file.

    Raises
    ------
    DataError
        Naming the file when it is missing, unreadable, truncated or empty.
    """
    return check_audio_file(path, mono=False)


def check_free(paths, overwrite):
    """Refuses to overwrite existing output files unless overwrite."""
    if overwrite:
        return
    existing = [path for path in paths if path.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UsageError(
            f"{existing[0]}: exists{more}; use --overwrite to replace"
        )


def load_model(folder):
    """Loads a pretrained folder (local only, weights read in place)."""
    return NoiseRobustSeparation.from_hparams(source=folder)


def chunk_settings(model, args):
    """Validates --chunk-seconds / --overlap-seconds against the model."""
    try:
        model.chunk_lengths(args.chunk_seconds, args.overlap_seconds)
    except ValueError as err:
        raise UsageError(f"--chunk-seconds / --overlap-seconds: {err}") from err


def separate(args):
    """``gmsep separate``: one wav per speaker (and enhanced) per input."""
    inputs = [Path(path) for path in args.inputs]
    for path in inputs:
        check_input_audio(path)
    stems = [path.stem for path in inputs]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise UsageError(
            f"several inputs are named {duplicates[0]}.*: their outputs would "
            "overwrite each other in --out"
        )
    model = load_model(args.model)
    if args.enhanced and not model.has_enhancer:
        raise UsageError(
            f"--enhanced: the model {args.model} has no enhancer (baseline "
            "separator without SE branch)"
        )
    chunk_settings(model, args)
    out = Path(args.out)
    suffixes = [f"_s{i + 1}" for i in range(model.num_spks)]
    suffixes += ["_enhanced"] if args.enhanced else []
    check_free(
        [out / f"{s}{x}.wav" for s in stems for x in suffixes], args.overwrite
    )

    chunk_length, overlap_length = model.chunk_lengths(
        args.chunk_seconds, args.overlap_seconds
    )
    for path in tqdm(inputs, desc="files", unit="file"):
        info = check_input_audio(path)
        length = math.ceil(info.frames * model.sample_rate / info.sample_rate)
        num_chunks = len(chunk_starts(length, chunk_length, overlap_length))
        tasks = [model.separate_file] + (
            [model.enhance_file] if args.enhanced else []
        )
        with tqdm(
            total=num_chunks * len(tasks),
            desc=path.name,
            unit="chunk",
            leave=False,
        ) as bar:
            for task in tasks:
                task(
                    path,
                    savedir=out,
                    chunk_seconds=args.chunk_seconds,
                    overlap_seconds=args.overlap_seconds,
                    resample_back=True,
                    progress=bar.update,
                )
    print(f"Wrote {len(inputs) * len(suffixes)} files to {out}")
    return 0


def optional_metrics(sample_rate):
    """PESQ and STOI functions (ref, est) -> float, for the installed packages.

    PESQ exists only at 8 kHz (narrow band) and 16 kHz (wide band).
    """
    metrics = {}
    if importlib.util.find_spec("pesq") is not None and sample_rate in (
        8000,
        16000,
    ):
        from pesq import PesqError, pesq

        mode = "nb" if sample_rate == 8000 else "wb"

        def pesq_score(ref, est):
            score = pesq(
                sample_rate, ref, est, mode, on_error=PesqError.RETURN_VALUES
            )
            return score if score >= 0 else math.nan  # negative: an error code

        metrics["pesq"] = pesq_score
    if importlib.util.find_spec("pystoi") is not None:
        from pystoi import stoi

        metrics["stoi"] = lambda ref, est: stoi(ref, est, sample_rate)
    return metrics


def read_test_csv(csv_path, num_spks):
    """Reads a prepared CSV; checks the columns the evaluation needs."""
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: CSV not found")
    with open(csv_path, newline="", encoding="utf-8") as fin:
        reader = csv.DictReader(fin)
        rows = list(reader)
        columns = reader.fieldnames or []
    needed = [ID, wav_column(MIX), *source_columns(num_spks)]
    missing = [name for name in needed if name not in columns]
    if missing:
        raise DataError(
            f"{csv_path}: missing column(s) {', '.join(missing)} for a "
            f"{num_spks}-speaker model (found: {', '.join(columns) or 'no header'})"
        )
    if not rows:
        raise DataError(f"{csv_path}: no utterances")
    return rows


def evaluate(args):
    """``gmsep evaluate``: per-utterance metrics, summary, pictures."""
    if args.max_files is not None and args.max_files < 1:
        raise UsageError(f"--max-files {args.max_files}: must be at least 1")
    if args.plots < 0:
        raise UsageError(f"--plots {args.plots}: must be 0 or more")
    csv_path, out = Path(args.csv), Path(args.out)
    model = load_model(args.model)
    chunk_settings(model, args)
    rows = read_test_csv(csv_path, model.num_spks)[: args.max_files]
    files = {
        "metrics": out / "metrics.csv",
        "summary": out / "summary.json",
        "histogram": out / "si-snr_i_histogram.png",
    }
    plot_dir = out / "spectrograms"
    plotted = rows[: args.plots]
    check_free(
        [*files.values(), *(plot_dir / f"{row[ID]}.png" for row in plotted)],
        args.overwrite,
    )
    extra_metrics = optional_metrics(model.sample_rate)
    plot_dir.mkdir(parents=True, exist_ok=True)

    results = []
    for i, row in enumerate(tqdm(rows, desc="utterances", unit="utt")):
        mix, _ = model.load_mixture(row[wav_column(MIX)])  # 1, T
        refs = [
            model.load_mixture(row[column])[0][0]
            for column in source_columns(model.num_spks)
        ]
        length = min(mix.shape[-1], *(ref.shape[-1] for ref in refs))
        mix = mix[:, :length]
        refs = torch.stack([ref[:length] for ref in refs], dim=-1)  # T, S
        chunking = (args.chunk_seconds, args.overlap_seconds)
        est = model.separate_long(mix, *chunking)[0]  # T, S
        result = {ID: row[ID], **separation_metrics(est, refs, mix[0])}
        if extra_metrics:
            aligned = align_speakers(est[None], refs[None])[0].numpy()
            for name, metric in extra_metrics.items():
                result[name] = (
                    sum(
                        metric(refs[:, s].numpy(), aligned[:, s])
                        for s in range(model.num_spks)
                    )
                    / model.num_spks
                )
        results.append(result)
        if i < len(plotted):
            signals = [("noisy mixture", mix[0])]
            if model.has_enhancer:
                signals.append(
                    ("enhanced mixture", model.enhance_long(mix, *chunking)[0])
                )
            signals += [
                (f"estimate s{s + 1}", est[:, s]) for s in range(model.num_spks)
            ]
            signals += [
                (f"reference s{s + 1}", refs[:, s])
                for s in range(model.num_spks)
            ]
            plot_spectrograms(
                plot_dir / f"{row[ID]}.png",
                signals,
                model.sample_rate,
                title=f"{row[ID]}: SI-SNRi {result['si-snr_i']:.2f} dB",
            )

    names = [name for name in results[0] if name != "ID"]
    write_results(files["metrics"], results, "ID", names)
    means = average_results(results, names)
    summary = {
        "model": str(Path(args.model).resolve()),
        "csv": str(csv_path.resolve()),
        "count": len(results),
        "means": means,
    }
    files["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    plot_histogram(
        files["histogram"],
        [r["si-snr_i"] for r in results],
        "SI-SNRi (dB)",
        title=f"SI-SNRi over {len(results)} utterances of {csv_path.name}",
    )
    print(
        f"{len(results)} utterances: "
        + ", ".join(f"{name} {value:.2f}" for name, value in means.items())
        + f"; results in {out}"
    )
    return 0


def export(args):
    """``gmsep export``: experiment folder -> pretrained folder."""
    out = export_pretrained(args.experiment, args.out, overwrite=args.overwrite)
    print(f"Exported {args.experiment} to {out}")
    return 0


def upgrade(args):
    """``gmsep upgrade-checkpoints``: one-module checkpoints -> one file per
    module (SpeechBrain's layout); nothing is removed."""
    converted = upgrade_checkpoints(args.save_folder)
    for folder in converted:
        print(f"Converted {folder}")
    if not converted:
        print(f"{args.save_folder}: no checkpoint to convert")
    return 0


def build_parser():
    """The argument parser of the ``gmsep`` command."""
    parser = argparse.ArgumentParser(
        prog="gmsep",
        description="Noise-robust speech separation (unified SE + SepFormer "
        "with gradient modulation): use a trained model.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add_chunking(command):
        command.add_argument(
            "--chunk-seconds",
            type=float,
            default=DEFAULT_CHUNK_SECONDS,
            help="longer recordings are separated in chunks of this length "
            "(default: %(default)s)",
        )
        command.add_argument(
            "--overlap-seconds",
            type=float,
            default=None,
            help="overlap of consecutive chunks (default: "
            f"{DEFAULT_OVERLAP_SECONDS}, at most a quarter of the chunk)",
        )

    sep = commands.add_parser(
        "separate", help="separate audio files into one file per speaker"
    )
    sep.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files")
    sep.add_argument("--model", required=True, help="pretrained folder")
    sep.add_argument("--out", required=True, help="output folder")
    add_chunking(sep)
    sep.add_argument(
        "--enhanced",
        action="store_true",
        help="also write the denoised mixture (<stem>_enhanced.wav)",
    )
    sep.add_argument("--overwrite", action="store_true", help="replace outputs")
    sep.set_defaults(handler=separate)

    ev = commands.add_parser(
        "evaluate", help="metrics and pictures on a prepared test CSV"
    )
    ev.add_argument("--model", required=True, help="pretrained folder")
    ev.add_argument(
        "--csv", required=True, help="prepared CSV (ID, mix_wav, s1_wav, ...)"
    )
    ev.add_argument("--out", required=True, help="output folder")
    ev.add_argument(
        "--max-files", type=int, default=None, help="first N rows only"
    )
    ev.add_argument(
        "--plots",
        type=int,
        default=3,
        help="spectrogram pictures for the first K utterances (default: 3)",
    )
    add_chunking(ev)
    ev.add_argument("--overwrite", action="store_true", help="replace outputs")
    ev.set_defaults(handler=evaluate)

    ex = commands.add_parser(
        "export",
        help="export an experiment's best checkpoint as a pretrained folder",
    )
    ex.add_argument(
        "experiment", metavar="EXPERIMENT_DIR", help="train.py's output_folder"
    )
    ex.add_argument("--out", required=True, help="pretrained folder to write")
    ex.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty --out"
    )
    ex.set_defaults(handler=export)

    up = commands.add_parser(
        "upgrade-checkpoints",
        help="convert an experiment's separator.ckpt checkpoints (earlier "
        "gmsep) to one .ckpt per module",
    )
    up.add_argument(
        "save_folder", metavar="SAVE_FOLDER", help="the experiment's save/"
    )
    up.set_defaults(handler=upgrade)
    return parser


def main(argv=None):
    """Runs the ``gmsep`` command; returns its exit code.

    Arguments
    ---------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 on a user error (one line on stderr).

    Example
    -------
    >>> main(["export", "no/such/experiment", "--out", "x"])
    2
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s: %(message)s"
    )
    try:
        return args.handler(args)
    except (*USER_ERRORS, UsageError) as err:
        print(f"gmsep {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
