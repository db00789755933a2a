"""The ``gmsep`` command: separate files, evaluate on a test CSV, export.

::

    gmsep separate mix.wav talks/ todo.txt --model pretrained/demo --out separated/
    gmsep enhance talks/ --model pretrained/demo --out denoised/ --subtype FLOAT
    gmsep evaluate --model pretrained/demo --csv test.csv --out eval/ --plots 3
    gmsep export results/demo/1234 --out pretrained/demo

(``python -m gmsep ...`` is the same.) A user error (missing or unreadable
file, incomplete model folder, output that exists, a bad option value)
prints one line naming the file or setting (one line per problem when
several inputs have one) and exits with code 2; ``--debug`` shows the
traceback instead. Every input is checked before the model loads and every
output location before any work starts. Parsing imports neither torch nor
SpeechBrain (``--help`` answers at once): each command imports what it runs.

Authors
 * gmsep contributors 2026
"""

import argparse
import collections
import csv
import importlib.metadata
import json
import logging
import math
import re
import sys
import time
from pathlib import Path

# Only what parsing needs is imported here: torch and SpeechBrain take
# seconds to import, and `gmsep --help` should not wait for them. Each
# command imports what it runs.
from gmsep import __version__
from gmsep.data.columns import (
    ID,
    MIX,
    count_source_columns,
    source_columns,
    wav_column,
)
from gmsep.data.outputs import (
    OutputError,
    check_output_folder,
    check_replaceable_folder,
    refuse_inputs,
    staged_files,
    staged_folder,
    write_text,
)

EXIT_USER_ERROR = 2
# How many problems of the inputs one run reports, one line each.
MAX_REPORTED = 10
# gmsep.inference.chunking's DEFAULT_CHUNK_SECONDS and
# DEFAULT_OVERLAP_SECONDS, as --help states them.
HELP_CHUNK_SECONDS = 8.0
HELP_OVERLAP_SECONDS = 2.0
# gmsep.inference.pretrained's BACKENDS and gmsep.inference.quantize's
# QUANTIZE, the choices of --backend and --quantize.
HELP_BACKENDS = ("torch", "onnxruntime")
HELP_QUANTIZE = ("none", "int8")


class UsageError(ValueError):
    """A command-line setting or an output file the user must change."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), exit 2."""

    def error(self, message):
        self.exit(
            EXIT_USER_ERROR,
            f"{self.prog}: error: {message} (see {self.prog} --help)\n",
        )


def seconds(text):
    """An option's value in seconds: a positive finite number."""
    try:
        value = float(text)  # "inf" and "nan" parse: refused below
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a positive, finite number of seconds"
        )
    return value


def count(minimum):
    """An option's value that is an integer of at least ``minimum``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an integer"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text}: expected an integer of at least {minimum}"
            )
        return value

    return parse


def device_name(text):
    """An option's value that names a torch device: cpu, cuda or cuda:N."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected cpu, cuda or cuda:N"
        )
    return text


def version_line():
    """``gmsep --version``: gmsep's version and those it runs on (read from
    the installed packages' metadata, nothing imported)."""
    versions = []
    for package in ("speechbrain", "torch"):
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    return f"gmsep {__version__} ({', '.join(versions)})"


def say(args, text):
    """Prints a message on stdout unless --quiet."""
    if not args.quiet:
        print(text)


def check_inputs(paths):
    """Checks every input recording (:func:`gmsep.data.audio.check_recording`)
    and reports all problems together, one line each.

    Any sample rate from ``gmsep.data.audio.MIN_SAMPLE_RATE`` and any channel
    count are accepted: the model resamples and downmixes. Returns the
    headers.
    """
    from gmsep.data.audio import DataError, check_recording

    infos, problems = [], []
    for path in paths:
        try:
            infos.append(check_recording(path))
        except DataError as err:
            problems.append(str(err))
    report_problems(problems)
    return infos


def report_problems(problems):
    """Raises one DataError of one line per problem (the first MAX_REPORTED)."""
    if not problems:
        return
    from gmsep.data.audio import DataError

    lines = problems[:MAX_REPORTED]
    if len(problems) > MAX_REPORTED:
        lines.append(f"... and {len(problems) - MAX_REPORTED} more problem(s)")
    raise DataError("\n".join(lines))


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


def load_model(folder, args=None):
    """Loads a pretrained folder (local only, weights read in place) onto
    --device (SpeechBrain's default, the CPU, when not given) and sets what
    runs it (--backend)."""
    from gmsep.inference.onnx_backend import ONNX_FILE
    from gmsep.inference.pretrained import (
        NoiseRobustSeparation,
        check_pretrained_folder,
    )
    from gmsep.inference.quantize import INT8_ONNX_FILE

    if args is not None and args.backend == "onnxruntime":
        # before the model loads, as every other input
        name = INT8_ONNX_FILE if args.quantize == "int8" else ONNX_FILE
        onnx_file = check_pretrained_folder(folder) / name
        if not onnx_file.is_file():
            raise UsageError(
                f"--backend onnxruntime: {onnx_file} not found (export the "
                "model with `gmsep export <experiment> --out <folder> --onnx`)"
            )
    device = getattr(args, "device", None)
    run_opts = {"device": device} if device else None
    model = NoiseRobustSeparation.from_hparams(source=folder, run_opts=run_opts)
    if args is not None:
        model.use_backend(args.backend, args.quantize)
        model.chunk_batch = args.chunk_batch
    return model


def check_device(device):
    """Refuses a CUDA device that this machine or this torch cannot use."""
    if device is None or not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else "no GPU found"
        raise UsageError(
            f"--device {device}: CUDA is not available (torch "
            f"{torch.__version__}, {build}); use --device cpu"
        )
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise UsageError(
            f"--device {device}: this machine has "
            f"{torch.cuda.device_count()} CUDA device(s), cuda:0 to "
            f"cuda:{torch.cuda.device_count() - 1}"
        )


def chunk_settings(model, args):
    """Validates --chunk-seconds / --overlap-seconds against the model."""
    try:
        model.chunk_lengths(args.chunk_seconds, args.overlap_seconds)
    except ValueError as err:
        raise UsageError(f"--chunk-seconds / --overlap-seconds: {err}") from err


def separate(args):
    """``gmsep separate`` and ``gmsep enhance``: for every recording, one
    wav per speaker and / or the enhanced mixture below --out, mirroring
    the input tree; recordings whose outputs exist are skipped.

    Every input is checked before the model loads (a bad one stops the
    command, one line per problem); what shows only while a recording is
    processed (data that do not decode, a failing write) fails that
    recording, the others go on, and the command ends with exit code 2.
    """
    from tqdm import tqdm

    from gmsep.data.inputs import find_inputs
    from gmsep.inference.chunking import chunk_starts

    check_device(args.device)
    out = check_output_folder(args.out)
    recordings = find_inputs(args.inputs, exclude=out)
    infos = check_inputs([recording.path for recording in recordings])
    check_unique_stems(recordings)
    report_dir = check_report(args, out, recordings)
    model = load_model(args.model, args)
    tasks = separation_tasks(model, args)
    chunk_settings(model, args)
    todo = tasks_to_run(recordings, tasks, out, args.overwrite)

    chunk_length, overlap_length = model.chunk_lengths(
        args.chunk_seconds, args.overlap_seconds
    )
    results = []  # (recording, status, seconds, audio seconds, reason)
    for recording, info, run in zip(
        tqdm(recordings, desc="files", unit="file", disable=args.quiet),
        infos,
        todo,
        strict=True,
    ):
        if not run:
            results.append((recording, "skipped", 0.0, info.duration, ""))
            continue
        length = math.ceil(info.frames * model.sample_rate / info.sample_rate)
        num_chunks = len(chunk_starts(length, chunk_length, overlap_length))
        start = time.perf_counter()
        try:
            with tqdm(
                total=num_chunks * len(run),
                desc=recording.path.name,
                unit="chunk",
                leave=False,
                disable=args.quiet,
            ) as bar:
                for task in run:
                    task.method(
                        recording.path,
                        savedir=out / recording.stem.parent,
                        chunk_seconds=args.chunk_seconds,
                        overlap_seconds=args.overlap_seconds,
                        resample_back=True,
                        progress=bar.update,
                        normalize=args.normalize,
                        subtype=args.subtype,
                    )
        except (*user_errors(), OSError, MemoryError) as err:
            if getattr(args, "debug", False):
                raise
            reason = error_lines(err)[0]
            logging.error(
                "%s: failed, going on with the next (%s)",
                recording.path,
                reason,
            )
            results.append((recording, "failed", 0.0, info.duration, reason))
            continue
        elapsed = time.perf_counter() - start
        results.append((recording, "done", elapsed, info.duration, ""))
    if report_dir is not None:
        write_report_of_separation(report_dir, model, args, results, tasks, out)
    if not args.quiet:
        print(summary_table(results, out))
    if report_dir is not None:
        say(args, f"listening report {report_dir / 'report.html'}")
    failed = sum(status == "failed" for _, status, *_ in results)
    if failed:
        raise UsageError(
            f"{failed} of {len(results)} recording(s) failed (listed above); "
            "run the same command again to retry them: the others are skipped"
        )
    return 0


def check_report(args, out, recordings):
    """``separate --report`` and ``enhance --report``: its folder (None
    without --report), checked like evaluate's before any work."""
    from gmsep.evaluation.report import is_report_file

    if not args.report:
        if args.plots is not None:
            raise UsageError("--plots: only with --report")
        return None
    report_dir = out / "report"
    for recording in recordings:  # the report replaces its folder whole
        if (
            recording.stem.parts[0] == report_dir.name
            and len(recording.stem.parts) > 1
        ):
            raise OutputError(
                f"{recording.path}: its outputs would go into {report_dir}, "
                "which --report replaces whole; choose another --out"
            )
    inputs = [recording.path for recording in recordings]
    check_replaceable_folder(report_dir, is_report_file, args.overwrite, inputs)
    return report_dir


def write_report_of_separation(report_dir, model, args, results, tasks, out):
    """``report/report.html`` of ``separate --report`` and ``enhance
    --report``: every recording in the table, the first --plots with
    outputs (all by default) listened to: the mixture, the enhanced mixture
    (models with an EnhanceNet: all of ``enhance``'s) and the estimates
    (``separate``), as written, at the recording's rate."""
    from gmsep.data.audio import read_audio
    from gmsep.evaluation.report import write_listening, write_separation_report

    rows, listened = [], {}
    plots = len(results) if args.plots is None else args.plots
    with staged_folder(report_dir) as report:
        for recording, status, seconds, duration, _ in results:
            name = str(recording.path)
            timed = seconds if status == "done" else None
            rows.append(
                {
                    "recording": name,
                    "duration": duration,
                    "seconds": timed,
                    "rtf": None if timed is None else timed / duration,
                    "status": status,
                }
            )
            if status == "failed" or len(listened) >= plots:
                continue
            mix, rate = read_audio(recording.path, 0)  # T
            signals = [("mix", "mixture (input)", mix)]
            files = [
                path
                for task in tasks
                for path in output_files(out, recording, task)
            ]
            enhanced = [
                path for path in files if path.stem.endswith("_enhanced")
            ]
            if model.has_enhancer and not enhanced:
                # not written: as --enhanced would write it
                signal = model.enhance_file(
                    recording.path,
                    chunk_seconds=args.chunk_seconds,
                    overlap_seconds=args.overlap_seconds,
                    resample_back=True,
                    normalize=args.normalize,
                )[0]
                signals.append(("enhanced", "enhanced mixture", signal))
            for path in enhanced:
                signals.append(
                    (
                        "enhanced",
                        f"enhanced mixture ({path.name})",
                        read_audio(path, 0)[0],
                    )
                )
            estimates = [path for path in files if path not in enhanced]
            for i, path in enumerate(estimates):
                signal = read_audio(path, 0)[0]
                signals.append(
                    (f"est{i + 1}", f"estimate s{i + 1} ({path.name})", signal)
                )
            listened[name] = write_listening(
                report, len(listened), signals, rate
            )
        title = f"model {Path(args.model).name}, {len(rows)} recording(s)"
        write_separation_report(report, title, rows, listened, args.command)


class Task(collections.namedtuple("Task", "method suffixes")):
    """One output set of a recording: a method of the model
    (``separate_file``, ``enhance_file``) and the suffixes of its files."""


def separation_tasks(model, args):
    """The output sets the command writes for each recording."""
    enhance = args.command == "enhance" or args.enhanced
    if enhance and not model.has_enhancer:
        setting = "--enhanced" if args.command == "separate" else "enhance"
        raise UsageError(
            f"{setting}: the model {args.model} has no enhancer (baseline "
            "separator without SE branch)"
        )
    tasks = []
    if args.command == "separate":
        suffixes = [f"_s{i + 1}" for i in range(model.num_spks)]
        tasks.append(Task(model.separate_file, suffixes))
    if enhance:
        tasks.append(Task(model.enhance_file, ["_enhanced"]))
    return tasks


def output_files(out, recording, task):
    """The files of one output set of a recording, below --out."""
    folder = out / recording.stem.parent
    return [folder / f"{recording.stem.name}{x}.wav" for x in task.suffixes]


def check_unique_stems(recordings):
    """Refuses recordings whose outputs would have the same names."""
    stems = collections.Counter(recording.stem for recording in recordings)
    duplicates = sorted(stem for stem, n in stems.items() if n > 1)
    if duplicates:
        raise UsageError(
            f"several inputs are named {duplicates[0]}.*: their outputs would "
            "overwrite each other in --out"
        )


def tasks_to_run(recordings, tasks, out, overwrite):
    """For each recording, the tasks whose outputs are to be written: all
    with --overwrite; otherwise those whose files do not exist yet (a set
    whose files all exist is complete: every set is written together). A
    set of which only some files exist was not written by this command as
    it is now: refused unless --overwrite. Outputs that would replace an
    input are refused whatever --overwrite says."""
    refuse_inputs(
        [
            path
            for recording in recordings
            for task in tasks
            for path in output_files(out, recording, task)
        ],
        [recording.path for recording in recordings],
    )
    todo = []
    for recording in recordings:
        run = []
        for task in tasks:
            files = output_files(out, recording, task)
            existing = [path for path in files if path.exists()]
            if overwrite or not existing:
                run.append(task)
            elif len(existing) < len(files):
                missing = next(path for path in files if not path.exists())
                raise UsageError(
                    f"{existing[0]}: exists, but not {missing.name} (an "
                    "incomplete set of outputs); use --overwrite to replace"
                )
        todo.append(run)
    return todo


def summary_table(results, out):
    """The per-recording summary of ``separate``: status, audio duration,
    processing time and real-time factor (processing time / duration), or
    why it was skipped or failed; then the totals."""
    lines = []
    for recording, status, seconds, duration, reason in results:
        if status == "done":
            detail = (
                f"{duration:.2f} s of audio in {seconds:.2f} s (RTF "
                f"{seconds / duration:.3f})"
            )
        elif status == "skipped":
            detail = "outputs exist (--overwrite redoes them)"
        else:  # the reason names the file when it is about the file
            detail = reason.removeprefix(f"{recording.path}: ")
        lines.append(f"{status:<8} {recording.path}: {detail}")
    counts = collections.Counter(status for _, status, *_ in results)
    done = [r for r in results if r[1] == "done"]
    audio = sum(duration for *_, duration, _ in done)
    seconds = sum(r[2] for r in done)
    total = f"{len(results)} recording(s): " + ", ".join(
        f"{counts[s]} {s}" for s in ("done", "skipped", "failed")
    )
    if done:
        total += (
            f"; {audio:.2f} s of audio in {seconds:.2f} s (RTF "
            f"{seconds / audio:.3f})"
        )
    return "\n".join([*lines, f"{total}; outputs in {out}"])


def perceptual_names(args):
    """The perceptual metrics evaluate computes: PESQ and STOI unless
    switched off (--no-pesq, --no-stoi); their packages must be installed."""
    from gmsep.evaluation.metrics import PERCEPTUAL_NAMES, missing_packages

    names = [
        name for name in PERCEPTUAL_NAMES if not getattr(args, f"no_{name}")
    ]
    for name in names:
        for package in missing_packages([name]):
            raise UsageError(
                f"{name}: the {package} package is not installed (pip install "
                f"{package}); or pass --no-{name}"
            )
    return names


def folder_num_spks(model):
    """The number of speakers a pretrained folder declares, read without
    building the model (None when it is not a plain number)."""
    import ruamel.yaml

    from gmsep.inference.pretrained import check_pretrained_folder

    folder = check_pretrained_folder(model)
    # the folder's check parsed this file already: it is valid YAML
    text = (folder / "hyperparams.yaml").read_text(encoding="utf-8")
    value = ruamel.yaml.YAML().load(text)
    num_spks = value.get("num_spks") if isinstance(value, dict) else None
    return num_spks if isinstance(num_spks, int) else None


def read_test_csv(csv_path, num_spks=None):
    """Reads a prepared CSV: its rows, with unique IDs and audio columns.

    Arguments
    ---------
    csv_path : pathlib.Path
    num_spks : int, optional
        The model's number of speakers, when known: the source columns
        it needs are checked.

    Returns
    -------
    rows : list of dict
    num_sources : int
        The number of source columns (s1_wav, s2_wav, ...) it has.
    """
    from gmsep.data.audio import DataError

    if not csv_path.is_file():
        raise DataError(f"{csv_path}: CSV not found")
    with open(csv_path, newline="", encoding="utf-8") as fin:
        reader = csv.DictReader(fin)
        rows = list(reader)
        columns = reader.fieldnames or []
    needed = [ID, wav_column(MIX)]
    needed += source_columns(num_spks) if num_spks is not None else []
    missing = [name for name in needed if name not in columns]
    if missing:
        model = f" for a {num_spks}-speaker model" if num_spks else ""
        raise DataError(
            f"{csv_path}: missing column(s) {', '.join(missing)}{model} "
            f"(found: {', '.join(columns) or 'no header'})"
        )
    if not rows:
        raise DataError(f"{csv_path}: no utterances")
    # IDs name the pictures and the rows of metrics.csv
    counts = collections.Counter(row[ID] for row in rows)
    duplicates = [name for name, n in counts.items() if n > 1]
    if duplicates:
        lines = [f"{name!r} ({counts[name]} rows)" for name in duplicates[:5]]
        raise DataError(
            f"{csv_path}: {len(duplicates)} utterance ID(s) appear more than "
            f"once: {', '.join(lines)}; IDs must be unique"
        )
    return rows, count_source_columns(columns)


def check_test_audio(rows, num_spks):
    """Checks every file of the evaluated rows before the model loads.

    Mixtures and references must be readable, complete and finite; a too
    short or silent one is not an error here: that utterance's metrics are
    undefined and it is excluded (see :func:`undefined_metrics`).
    """
    from gmsep.data.audio import DataError, check_recording

    columns = [wav_column(MIX), *source_columns(num_spks)]
    problems = []
    for row in rows:
        for column in columns:
            try:
                check_recording(row[column], min_seconds=0)
            except DataError as err:
                problems.append(f"row {row[ID]} ({column}): {err}")
    report_problems(problems)


def undefined_metrics(mix, refs, sample_rate):
    """Why an utterance's metrics would be undefined, or None.

    SI-SNR divides by the energy of each reference, and the 512-tap SDR
    needs more samples than its filter.
    """
    from gmsep.data.audio import MIN_SECONDS

    length = mix.shape[-1]
    if length < MIN_SECONDS * sample_rate:
        return (
            f"{length} samples after cropping to the shortest file, fewer "
            f"than {MIN_SECONDS} s"
        )
    silent = [
        f"s{s + 1}" for s in range(refs.shape[-1]) if not refs[:, s].any()
    ]
    if silent:
        return f"reference {', '.join(silent)} is silent"
    return None


def evaluate(args):
    """``gmsep evaluate``: per-utterance metrics, summary, pictures and the
    listening report."""
    from gmsep.data.audio import DataError
    from gmsep.evaluation.metrics import pesq_mode
    from gmsep.evaluation.plots import plot_histogram
    from gmsep.evaluation.report import REPORT, is_report_file, write_report
    from gmsep.evaluation.results import average_results, write_results

    check_device(args.device)
    csv_path, out = Path(args.csv), check_output_folder(args.out)
    rows, num_sources = read_test_csv(csv_path, folder_num_spks(args.model))
    rows = rows[: args.max_files]
    check_test_audio(rows, num_sources)
    files = {
        "metrics": out / "metrics.csv",
        "summary": out / "summary.json",
        "histogram": out / "si-snr_i_histogram.png",
    }
    plot_dir, report_dir = out / "spectrograms", out / "report"
    plotted = rows[: args.plots]
    outputs = [
        *files.values(),
        *(plot_dir / f"{row[ID]}.png" for row in plotted),
    ]
    inputs = [
        csv_path,
        *(row[c] for row in rows for c in row if c.endswith("_wav")),
    ]
    refuse_inputs(outputs, inputs)
    check_free(outputs, args.overwrite)
    check_replaceable_folder(report_dir, is_report_file, args.overwrite, inputs)
    perceptual = perceptual_names(args)
    model = load_model(args.model, args)
    chunk_settings(model, args)
    if num_sources != model.num_spks:
        raise DataError(
            f"{csv_path}: {num_sources} source column(s), the model "
            f"{args.model} separates {model.num_spks} speakers (expected "
            f"{', '.join(source_columns(model.num_spks))})"
        )
    out.mkdir(parents=True, exist_ok=True)
    # the report is moved in once every other output is written
    with staged_folder(report_dir) as report:
        scored = score_utterances(
            model, rows, args, perceptual, plot_dir, len(plotted), report
        )
        results, excluded, unscored, listened = scored
        for entry in excluded:
            logging.warning(
                "%s: excluded, its metrics are undefined (%s)",
                entry[ID],
                entry["reason"],
            )
        for entry in unscored:
            logging.warning(
                "%s: %s; left out of the %s mean",
                entry[ID],
                entry["reason"],
                entry["metric"],
            )
        if not results:
            raise DataError(
                f"{csv_path}: no utterance has defined metrics "
                f"({len(excluded)} excluded, see the warnings above)"
            )
        names = [name for name in results[0] if name not in (ID, "input_snr")]
        write_results(files["metrics"], results, ID, [*names, "input_snr"])
        means = average_results(results, names, defined_only=perceptual)
        summary = {
            "model": str(Path(args.model).resolve()),
            "csv": str(csv_path.resolve()),
            "count": len(results),
            # null: undefined on every utterance
            "means": {
                k: v if math.isfinite(v) else None for k, v in means.items()
            },
            "scored": {
                name: sum(math.isfinite(r[name]) for r in results)
                for name in perceptual
            },
            "pesq_mode": pesq_mode(model.sample_rate)[0]
            if "pesq" in perceptual
            else None,
            "excluded": excluded,
            "unscored": unscored,
        }
        write_text(files["summary"], json.dumps(summary, indent=2) + "\n")
        with staged_files([files["histogram"]]) as (picture,):
            plot_histogram(
                picture,
                [r["si-snr_i"] for r in results],
                "SI-SNRi (dB)",
                title=f"SI-SNRi over {len(results)} utterances of "
                f"{csv_path.name}",
            )
        title = f"model {Path(args.model).name}, test set {csv_path.name}"
        write_report(report, title, summary, results, listened)
    say(
        args,
        f"{len(results)} utterances: "
        + ", ".join(f"{name} {value:.2f}" for name, value in means.items())
        + (f" ({len(excluded)} excluded)" if excluded else "")
        + "".join(
            f"; {name} undefined on {len(results) - n}"
            for name, n in summary["scored"].items()
            if n < len(results)
        )
        + f"; results in {out}, listening report {report_dir / REPORT}",
    )
    return 0


def score_utterances(model, rows, args, perceptual, plot_dir, plots, report):
    """Separates and scores every row; the first ``plots`` scored ones get
    a spectrogram picture and a place in the report.

    Returns
    -------
    results : list of dict
        One per scored utterance: ID, metrics, ``input_snr``.
    excluded, unscored : list of dict
        Utterances left out (ID, reason), metrics left out (ID, metric,
        reason).
    listened : dict
        ID -> its files in the report (:func:`write_listening`).
    """
    import torch
    from tqdm import tqdm

    from gmsep.evaluation.metrics import perceptual_metrics, separation_metrics
    from gmsep.evaluation.plots import displayed_signals, plot_spectrograms
    from gmsep.evaluation.report import input_snr, write_listening

    results, excluded, unscored, listened = [], [], [], {}
    chunking = (args.chunk_seconds, args.overlap_seconds)
    for i, row in enumerate(
        tqdm(rows, desc="utterances", unit="utt", disable=args.quiet)
    ):
        # too short: excluded below, with the reason
        mix, _ = model.load_mixture(row[wav_column(MIX)], 0)  # 1, T
        refs = [
            model.load_mixture(row[column], 0)[0][0]
            for column in source_columns(model.num_spks)
        ]
        length = min(mix.shape[-1], *(ref.shape[-1] for ref in refs))
        mix = mix[:, :length]
        refs = torch.stack([ref[:length] for ref in refs], dim=-1)  # T, S
        reason = undefined_metrics(mix, refs, model.sample_rate)
        if reason is not None:
            excluded.append({ID: row[ID], "reason": reason})
            continue
        est = model.separate_long(mix, *chunking)[0]  # T, S
        result = {ID: row[ID], **separation_metrics(est, refs, mix[0])}
        undefined = [
            f"{name} is {value}"
            for name, value in result.items()
            if name != ID and not math.isfinite(value)
        ]
        if undefined:
            excluded.append({ID: row[ID], "reason": ", ".join(undefined)})
            continue
        # PESQ or STOI undefined (too short): left out of that mean only
        values, reasons = perceptual_metrics(
            est, refs, model.sample_rate, perceptual
        )
        result.update(values)
        result["input_snr"] = input_snr(mix[0], refs)
        unscored += [
            {ID: row[ID], "metric": name, "reason": reason}
            for name, reason in reasons.items()
        ]
        results.append(result)
        if i >= plots:
            continue
        enhanced = None
        if model.has_enhancer:
            enhanced = model.enhance_long(mix, *chunking)[0]
        signals = displayed_signals(mix[0], refs, est, enhanced)
        plot_dir.mkdir(exist_ok=True)
        with staged_files([plot_dir / f"{row[ID]}.png"]) as (picture,):
            plot_spectrograms(
                picture,
                [(label, signal) for _, label, signal in signals],
                model.sample_rate,
                title=f"{row[ID]}: SI-SNRi {result['si-snr_i']:.2f} dB",
            )
        listened[row[ID]] = write_listening(
            report, len(listened), signals, model.sample_rate
        )
    return results, excluded, unscored, listened


def export(args):
    """``gmsep export``: experiment folder -> pretrained folder."""
    from gmsep.inference.export import export_pretrained

    out = export_pretrained(
        args.experiment, args.out, overwrite=args.overwrite, onnx=args.onnx
    )
    say(args, f"Exported {args.experiment} to {out}")
    return 0


def upgrade(args):
    """``gmsep upgrade-checkpoints``: one-module checkpoints -> one file per
    module (SpeechBrain's layout); nothing is removed."""
    from gmsep.training.legacy_checkpoints import upgrade_checkpoints

    converted = upgrade_checkpoints(args.save_folder)
    for folder in converted:
        say(args, f"Converted {folder}")
    if not converted:
        say(args, f"{args.save_folder}: no checkpoint to convert")
    return 0


def build_parser():
    """The argument parser of the ``gmsep`` command."""
    parser = OneLineParser(
        prog="gmsep",
        description="Noise-robust speech separation (unified SE + SepFormer "
        "with gradient modulation): use a trained model.",
    )
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error instead of its one line",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars and no messages on stdout; warnings and "
        "errors still go to stderr",
    )
    # the same switches after the command; absent there unless given
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS
    )
    common.add_argument(
        "--quiet", action="store_true", default=argparse.SUPPRESS
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add_chunking(command):
        # None: gmsep.inference.chunking's defaults, which the help states
        # without importing torch (a test holds the two equal)
        command.add_argument(
            "--chunk-seconds",
            type=seconds,
            default=None,
            help="longer recordings are separated in chunks of this length "
            f"(default: {HELP_CHUNK_SECONDS})",
        )
        command.add_argument(
            "--overlap-seconds",
            type=seconds,
            default=None,
            help="overlap of consecutive chunks (default: "
            f"{HELP_OVERLAP_SECONDS}, at most a quarter of the chunk)",
        )
        command.add_argument(
            "--chunk-batch",
            type=count(1),
            default=1,
            help="chunks of a long recording separated together, as one "
            "batch (same output; faster where one chunk leaves the device "
            "idle) (default: %(default)s)",
        )
        command.add_argument(
            "--backend",
            choices=HELP_BACKENDS,
            default="torch",
            help="what runs the network: torch, or onnxruntime on the "
            "folder's separator.onnx (gmsep export --onnx) (default: "
            "%(default)s)",
        )
        command.add_argument(
            "--quantize",
            choices=HELP_QUANTIZE,
            default="none",
            help="int8: dynamic int8 matrix products on the CPU (torch: its "
            "linear layers; onnxruntime: separator-int8.onnx) (default: "
            "%(default)s)",
        )

    def add_device(command):
        command.add_argument(
            "--device",
            type=device_name,
            default=None,
            help="where the model runs: cpu (default), cuda or cuda:N",
        )

    def add_recordings(command):
        command.add_argument(
            "inputs",
            nargs="+",
            metavar="INPUT",
            help="audio files, folders (searched recursively), glob patterns "
            "(quoted: 'talks/**/*.flac') and lists (.txt, .lst, .list: one "
            "of those per line); the outputs mirror the folders in --out",
        )
        command.add_argument("--model", required=True, help="pretrained folder")
        command.add_argument("--out", required=True, help="output folder")
        add_chunking(command)
        add_device(command)
        command.add_argument(
            "--normalize",
            choices=("peak", "loudness", "none"),
            default="peak",
            help="the level of each output: peak (default: each file to a "
            "peak of 0.99, as SpeechBrain's separate_file), loudness (each "
            "file to the recording's integrated loudness, ITU-R BS.1770) or "
            "none (the network's own scale, typically well below the input)",
        )
        command.add_argument(
            "--subtype",
            type=str.upper,
            choices=("PCM_16", "PCM_24", "FLOAT"),
            default="PCM_16",
            help="sample format of the files (default: PCM_16); nothing is "
            "clipped: outputs beyond full scale are scaled down together in "
            "a PCM file, with a warning, and kept as they are in a FLOAT one",
        )
        command.add_argument(
            "--overwrite",
            action="store_true",
            help="redo recordings whose outputs exist (default: skip them)",
        )
        command.add_argument(
            "--report",
            action="store_true",
            help="also write a listening report (report/report.html below "
            "--out): players and spectrograms of each input and its "
            "outputs, no metrics",
        )
        command.add_argument(
            "--plots",
            type=count(0),
            default=None,
            help="with --report: players and spectrograms for the first K "
            "recordings (default: all)",
        )
        command.set_defaults(handler=separate)

    sep = commands.add_parser(
        "separate",
        help="separate recordings into one file per speaker",
        parents=[common],
    )
    add_recordings(sep)
    sep.add_argument(
        "--enhanced",
        action="store_true",
        help="also write the denoised mixture (<stem>_enhanced.wav)",
    )
    enh = commands.add_parser(
        "enhance",
        help="denoise recordings with the SE branch, speakers kept together "
        "(<stem>_enhanced.wav)",
        parents=[common],
    )
    add_recordings(enh)

    ev = commands.add_parser(
        "evaluate",
        help="metrics and pictures on a prepared test CSV",
        parents=[common],
    )
    ev.add_argument("--model", required=True, help="pretrained folder")
    ev.add_argument(
        "--csv", required=True, help="prepared CSV (ID, mix_wav, s1_wav, ...)"
    )
    ev.add_argument("--out", required=True, help="output folder")
    ev.add_argument(
        "--max-files", type=count(1), default=None, help="first N rows only"
    )
    ev.add_argument(
        "--plots",
        type=count(0),
        default=3,
        help="spectrogram pictures and a place in the listening report "
        "(report/report.html) for the first K utterances (default: 3)",
    )
    ev.add_argument(
        "--no-pesq",
        action="store_true",
        help="skip PESQ (8 kHz: narrow band; 16 kHz and other rates, "
        "resampled to 16 kHz: wide band)",
    )
    ev.add_argument("--no-stoi", action="store_true", help="skip STOI")
    add_chunking(ev)
    add_device(ev)
    ev.add_argument("--overwrite", action="store_true", help="replace outputs")
    ev.set_defaults(handler=evaluate)

    ex = commands.add_parser(
        "export",
        parents=[common],
        help="export an experiment's best checkpoint as a pretrained folder",
    )
    ex.add_argument(
        "experiment", metavar="EXPERIMENT_DIR", help="train.py's output_folder"
    )
    ex.add_argument("--out", required=True, help="pretrained folder to write")
    ex.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty --out"
    )
    ex.add_argument(
        "--onnx",
        action="store_true",
        help="also write separator.onnx (for --backend onnxruntime)",
    )
    ex.set_defaults(handler=export)

    up = commands.add_parser(
        "upgrade-checkpoints",
        parents=[common],
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
        0 on success, 2 on a user error (one line on stderr per problem).

    Example
    -------
    >>> main(["export", "no/such/experiment", "--out", "x"])
    2
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help, or a bad option (its one line)
        return exit.code
    handler = setup_logging()
    once = OncePerCommand()
    handler.addFilter(once)
    try:
        return args.handler(args)
    except (*user_errors(), UsageError, OSError) as err:
        if getattr(args, "debug", False):
            raise
        for line in error_lines(err):
            print(f"gmsep {args.command}: error: {line}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        handler.removeFilter(once)


class LineHandler(logging.Handler):
    """Writes each record on lines of its own to the current stderr: above
    the progress bars, through ``tqdm.write`` (as SpeechBrain's
    TqdmCompatibleStreamHandler, which cannot be imported before the
    notices SpeechBrain logs at its import)."""

    def emit(self, record):
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
            sys.stderr.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def user_errors():
    """The errors that are the user's to fix (one line, exit code 2)."""
    from gmsep.data.audio import DataError
    from gmsep.inference.export import ExportError
    from gmsep.inference.pretrained import PretrainedFolderError
    from gmsep.training.legacy_checkpoints import LegacyCheckpointError

    return (
        DataError,
        OutputError,
        PretrainedFolderError,
        ExportError,
        LegacyCheckpointError,
    )


def setup_logging():
    """Warnings and errors to stderr, one record per line, above any
    progress bar; SpeechBrain's INFO records (``Loading pretrained files
    for: ...``, one per call) are not shown. Returns the handler."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, LineHandler):
            return handler  # an earlier main() in this process
    handler = LineHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.addFilter(_not_about_training)
    root.addHandler(handler)
    logging.captureWarnings(True)  # warnings.warn through the same handler
    return handler


class OncePerCommand(logging.Filter):
    """Drops a warning that the command has already printed, word for word.

    A recording is read again after its first read, by ``--enhanced`` (the
    enhanced mixture is a second pass over the file) and by ``--report``
    (its players): each read would repeat the warnings of the first (``2
    channels, averaged to mono``, a rate below the model's), which name the
    recording, so each is printed once per recording. Errors always are.
    """

    def __init__(self):
        super().__init__()
        self.printed = set()

    def filter(self, record):
        if record.levelno != logging.WARNING:
            return True
        message = record.getMessage()
        if message in self.printed:
            return False
        self.printed.add(message)
        return True


def _not_about_training(record):
    """Drops SpeechBrain's training-logger notices (``torchvision is not
    available - cannot save figures``, at its import): no command here
    saves training figures."""
    return not (
        record.name == "speechbrain.utils.train_logger"
        and record.levelno < logging.ERROR
    )


def error_lines(err):
    """The lines of a user error; an OSError as ``<file>: <reason>``."""
    if isinstance(err, OSError) and err.filename is not None:
        return [f"{err.filename}: {err.strerror}"]
    return str(err).splitlines() or [type(err).__name__]
