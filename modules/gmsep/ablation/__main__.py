"""``python -m gmsep.ablation``: trains, tests and reports an ablation.

    python -m gmsep.ablation hparams/ablations/demo.yaml \\
        --data_folder data/demo/Libri2Mix --jobs 2

Every variant is checked (settings, parameter count, equal steps) before
the first run starts; finished runs are never redone, so the same command
resumes a stopped ablation; ``--report-only`` writes the report from the
runs finished so far.

Authors
 * gmsep contributors 2026
"""

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

import yaml

from gmsep.ablation.report import summarize, write_report
from gmsep.ablation.runs import (
    REPOSITORY,
    check_identity,
    plan_runs,
    read_epochs,
    read_seconds,
    read_test_results,
    train,
)
from gmsep.ablation.spec import RESERVED_SETTINGS, AblationError, load_spec
from gmsep.cli import count
from gmsep.data.outputs import OutputError, check_output_folder

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1
LOCK_FILE = "ablation.lock"


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="python -m gmsep.ablation",
        description="Train variants of an experiment over several seeds, "
        "test each, and report the differences with 95 % confidence "
        "intervals.",
    )
    parser.add_argument(
        "ablation", help="the ablation file (hparams/ablations/)"
    )
    parser.add_argument(
        "--data_folder", required=True, help="the corpus every run trains on"
    )
    parser.add_argument(
        "--out",
        help="the ablation's folder: runs/ and the report "
        "(default: results/ablation/<ablation file's name>)",
    )
    parser.add_argument(
        "--runs",
        help="where the runs are trained (default: OUT/runs); ablations "
        "that share it share their common runs",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="instead of the file's seeds"
    )
    parser.add_argument(
        "--variants", nargs="+", help="only these (and the reference)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every run (e.g. --set N_epochs=1); repeatable",
    )
    parser.add_argument(
        "--jobs", type=count(1), default=1, help="runs trained at once"
    )
    parser.add_argument(
        "--threads",
        type=count(1),
        help="CPU threads per run (default: the cores divided by --jobs)",
    )
    parser.add_argument(
        "--train-script",
        default=str(REPOSITORY / "train.py"),
        help="the recipe's train.py",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: report the runs finished so far",
    )
    return parser.parse_args(argv)


def _with_settings(spec, assignments):
    """The spec with the ``--set`` settings added to every variant's."""
    settings = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise AblationError(f"--set {assignment}: expected KEY=VALUE")
        if key in RESERVED_SETTINGS:
            raise AblationError(
                f"--set {key}: set by the ablation for each run"
            )
        settings[key] = yaml.safe_load(value)
    variants = tuple(
        replace(v, settings={**v.settings, **settings}) for v in spec.variants
    )
    return replace(spec, variants=variants)


def check_variants(spec, data_folder):
    """Loads every variant as ``train.py`` would (nothing trained): refuses
    a wrong setting, and variants that would not train for the same
    number of steps.

    Returns
    -------
    dict
        Variant name -> trainable parameters.
    """
    from gmsep.training.config_checks import check_config, check_hparams_file
    from gmsep.training.experiment import load_experiment

    if str(REPOSITORY) not in sys.path:  # the recipes, as train.py finds them
        sys.path.insert(0, str(REPOSITORY))
    parameters, budgets = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for variant in spec.variants:
            overrides = {
                **variant.settings,
                "data_folder": data_folder,
                "output_folder": os.path.join(scratch, variant.name),
            }
            try:
                check_hparams_file(variant.hparams, yaml.safe_dump(overrides))
                hparams, _ = load_experiment(variant.hparams, overrides)
                check_config(hparams, {"device": "cpu"})
            except ValueError as err:
                raise AblationError(f"variant {variant.name}: {err}") from None
            parameters[variant.name] = sum(
                p.numel()
                for p in hparams["separator"].parameters()
                if p.requires_grad
            )
            budgets[variant.name] = {
                key: hparams[key]
                for key in ("N_epochs", "batch_size", "training_signal_len")
            }
    reference = budgets[spec.reference]
    for name, budget in budgets.items():
        if budget != reference:
            raise AblationError(
                f"variant {name}: trains with {budget}, the reference "
                f"{spec.reference} with {reference}: the variants must train "
                "for the same number of steps on the same crops"
            )
    return parameters


class Lock:
    """``ablation.lock`` in the runs' folder: two processes training the
    same runs would corrupt them. A lock whose process is gone is taken
    over."""

    def __init__(self, folder):
        self.path = Path(folder) / LOCK_FILE

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = _read_pid(self.path)
            if pid is not None and _is_running(pid):
                raise AblationError(
                    f"{self.path}: another ablation (process {pid}) is "
                    "running in this folder"
                ) from None
            self.path.unlink(missing_ok=True)  # stale: its process is gone
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        with os.fdopen(fd, "w") as lock:
            lock.write(f"{os.getpid()}\n")
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def _read_pid(path):
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def _is_running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def train_runs(runs, args, threads):
    """Trains the unfinished runs, ``--jobs`` at a time; prints progress.

    Returns
    -------
    list of str
        The failures' messages.
    """
    todo = [run for run in runs if not run.is_finished()]
    done = len(runs) - len(todo)
    print(
        f"ablation: {len(runs)} runs, {done} finished, {len(todo)} to train "
        f"({args.jobs} at a time, {threads} thread(s) each)",
        flush=True,
    )
    failures = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {}
        for run in todo:
            futures[pool.submit(train, run, args.train_script, threads)] = run
            print(f"  queued {run.label}: {run.folder}", flush=True)
        for future in as_completed(futures):
            run = futures[future]
            done += 1
            try:
                seconds = future.result()
            except AblationError as err:
                failures.append(str(err))
                print(f"[{done}/{len(runs)}] FAILED {err}", flush=True)
                continue
            results = read_test_results(run)
            mean = sum(r["si-snr_i"] for r in results.values()) / len(results)
            print(
                f"[{done}/{len(runs)}] {run.label}: test SI-SNRi {mean:.2f} dB "
                f"({seconds / 60:.1f} min)",
                flush=True,
            )
    return failures


def main(argv):
    args = parse_arguments(argv)
    start = time.monotonic()
    spec = load_spec(args.ablation)
    spec = _with_settings(spec.select(args.variants, args.seeds), args.set)
    if not os.path.isdir(args.data_folder):
        raise AblationError(f"--data_folder {args.data_folder}: not a folder")
    if not os.path.isfile(args.train_script):
        raise AblationError(f"--train-script {args.train_script}: not found")
    out = args.out or os.path.join(
        "results", "ablation", Path(args.ablation).stem
    )
    runs_folder = args.runs or os.path.join(out, "runs")
    check_output_folder(out)
    check_output_folder(runs_folder, "--runs")
    data_folder = os.path.abspath(args.data_folder)
    parameters = check_variants(spec, data_folder)
    runs = plan_runs(spec, runs_folder, data_folder)
    for run in runs:
        check_identity(run)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    failures = []
    with Lock(runs_folder):
        if not args.report_only:
            failures = train_runs(runs, args, threads)
        finished = [run for run in runs if run.is_finished()]
        results, epochs, seconds = {}, {}, {}
        for run in finished:
            name = run.variant.name
            results.setdefault(name, {})[run.seed] = read_test_results(run)
            epochs.setdefault(name, {})[run.seed] = read_epochs(run)
            seconds.setdefault(name, {})[run.seed] = read_seconds(run)
        command = " ".join(["python -m gmsep.ablation", *argv])
        summary = summarize(spec, results, epochs, parameters, seconds, command)
        Path(out).mkdir(parents=True, exist_ok=True)
        paths = write_report(summary, out)
    print(
        f"ablation: {len(summary['seeds'])} of {len(spec.seeds)} seeds "
        f"complete; report: {paths[1]} ({(time.monotonic() - start) / 60:.1f} "
        "min)"
    )
    for failure in failures:
        print(f"ablation: error: {failure}", file=sys.stderr)
    return EXIT_RUN_FAILED if failures else 0


def run(argv):
    """:func:`main`, its user errors as one line, exit code 2."""
    try:
        return main(argv)
    except (AblationError, OutputError) as err:
        print(f"ablation: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
