"""The runs of an ablation: one ``train.py`` run per variant and seed.

Each run trains, tests and leaves its experiment folder at
``RUNS/<variant>/seed-<seed>/`` (``RUNS``: ``OUT/runs`` unless given) (SpeechBrain's usual contents:
``train_log.txt``, ``save/``, ``test_results.csv``), with ``run.json``
beside them: what the run is (experiment file, settings, seed, data). A run
whose ``test_results.csv`` exists is finished and never redone; a run
stopped half-way resumes from its last checkpoint, as ``train.py`` does; a
folder holding another run than the one asked for is refused, never
replaced.

The runs are ``train.py`` processes, as a user would start them: the
ablation measures the recipe itself. Every variant of a seed sees the same
data in the same order (SpeechBrain's training sampler has a fixed seed of
its own); the seed sets the initial weights, the crops and the speed
perturbation.

Authors
 * gmsep contributors 2026
"""

import csv
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gmsep.ablation.spec import AblationError
from gmsep.data.outputs import write_text

RESULTS_FILE = "test_results.csv"
IDENTITY_FILE = "run.json"
LOG_FILE = "train.out"
SECONDS_FILE = "seconds.txt"
METRICS = ("si-snr_i", "sdr_i")
REPOSITORY = Path(__file__).resolve().parents[3]  # holds train.py
_NUMBER = r"(-?[0-9.]+(?:e[-+]?[0-9]+)?|nan|inf|-inf)"


@dataclass(frozen=True)
class Run:
    """One variant trained with one seed.

    Arguments
    ---------
    variant : gmsep.ablation.spec.Variant
    seed : int
    folder : pathlib.Path
        Its experiment folder.
    data_folder : str
        Absolute.
    """

    variant: object
    seed: int
    folder: Path
    data_folder: str

    @property
    def label(self):
        return f"{self.variant.name} seed {self.seed}"

    def identity(self):
        """What makes two runs the same run."""
        return {
            "variant": self.variant.name,
            # relative: a clone elsewhere holds the same runs
            "hparams": os.path.relpath(self.variant.hparams, REPOSITORY),
            "settings": self.variant.settings,
            "seed": self.seed,
            "data_folder": self.data_folder,
        }

    def is_finished(self):
        return (self.folder / RESULTS_FILE).is_file()

    def command(self, train_script):
        """The ``train.py`` command line of the run."""
        return [
            sys.executable,
            str(train_script),
            self.variant.hparams,
            "--data_folder",
            self.data_folder,
            "--seed",
            str(self.seed),
            "--output_folder",
            str(self.folder),
            *self.variant.overrides(),
        ]


def plan_runs(spec, runs_folder, data_folder):
    """Every run of the ablation, seed by seed (so that a stopped ablation
    has whole seeds to report), in ``runs_folder/<variant>/seed-<seed>``."""
    data_folder = os.path.abspath(data_folder)
    return [
        Run(
            variant,
            seed,
            Path(runs_folder) / variant.name / f"seed-{seed}",
            data_folder,
        )
        for seed in spec.seeds
        for variant in spec.variants
    ]


def check_identity(run):
    """Refuses a run folder that holds another run (other settings, data or
    experiment file): its results would be reported under a wrong name.

    Raises
    ------
    AblationError
        Naming the folder and what differs.
    """
    path = run.folder / IDENTITY_FILE
    if not path.is_file():
        if run.folder.exists() and any(run.folder.iterdir()):
            raise AblationError(
                f"{run.folder}: not empty and has no {IDENTITY_FILE}: not a "
                "run of an ablation; choose another --out"
            )
        return
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise AblationError(f"{path}: unreadable ({err})") from None
    wanted = json.loads(json.dumps(run.identity()))
    differs = sorted(
        key
        for key in wanted.keys() | found.keys()
        if wanted.get(key) != found.get(key)
    )
    if differs:
        raise AblationError(
            f"{run.folder}: holds a run with other {', '.join(differs)} "
            f"({', '.join(f'{k}={found.get(k)!r}' for k in differs)}); "
            "choose another --out, or remove that folder to train it anew"
        )


def train(run, train_script, threads):
    """Trains and tests one run (resuming it if it was stopped), its output
    in ``train.out``.

    Arguments
    ---------
    run : Run
    train_script : str or pathlib.Path
        The recipe's ``train.py``.
    threads : int
        CPU threads of the run (OMP_NUM_THREADS).

    Returns
    -------
    float
        Seconds the run took.

    Raises
    ------
    AblationError
        When ``train.py`` fails; names the run and its log.
    """
    check_identity(run)
    run.folder.mkdir(parents=True, exist_ok=True)
    write_text(
        run.folder / IDENTITY_FILE, json.dumps(run.identity(), indent=2) + "\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPOSITORY / "modules"), env.get("PYTHONPATH")])
    )
    start = time.monotonic()
    with open(run.folder / LOG_FILE, "a", encoding="utf-8") as log:
        process = subprocess.run(
            run.command(train_script),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            check=False,
        )
    seconds = time.monotonic() - start
    if process.returncode != 0 or not run.is_finished():
        tail = _last_lines(run.folder / LOG_FILE, 3)
        raise AblationError(
            f"{run.label}: train.py exited with {process.returncode}; "
            f"see {run.folder / LOG_FILE} ({tail})"
        )
    write_text(run.folder / SECONDS_FILE, f"{seconds:.1f}\n")
    return seconds


def read_seconds(run):
    """The seconds a finished run took (its last start, if resumed), or None."""
    path = run.folder / SECONDS_FILE
    return float(path.read_text()) if path.is_file() else None


def _last_lines(path, count):
    lines = (
        Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    )
    return " | ".join(line.strip() for line in lines[-count:] if line.strip())


def read_test_results(run):
    """The per-utterance test metrics of a finished run.

    Returns
    -------
    dict
        Utterance ID -> {metric: value} for ``METRICS``.
    """
    path = run.folder / RESULTS_FILE
    with open(path, newline="", encoding="utf-8") as fin:
        rows = list(csv.DictReader(fin))
    missing = [m for m in METRICS if rows and m not in rows[0]]
    if not rows or missing:
        raise AblationError(f"{path}: no rows or no column {missing}")
    return {
        row["snt_id"]: {metric: float(row[metric]) for metric in METRICS}
        for row in rows
        if row["snt_id"] != "avg"
    }


def read_epochs(run):
    """Per epoch, from ``train_log.txt``: the validation SI-SNR (dB, the
    negated loss) and the training seconds per step.

    Returns
    -------
    list of dict
        ``{"epoch", "valid_si_snr", "seconds_per_step"}`` in order; a
        resumed run's epoch logged twice counts once (the last).
    """
    path = run.folder / "train_log.txt"
    epochs = {}
    if not path.is_file():
        return []
    for line in path.read_text(encoding="utf-8").splitlines():
        epoch = re.match(r"epoch: (\d+)", line)
        valid = re.search(r"valid si-snr: " + _NUMBER, line)
        if epoch is None or valid is None:
            continue
        step = re.search(r"seconds_per_step: " + _NUMBER, line)
        epochs[int(epoch[1])] = {
            "epoch": int(epoch[1]),
            "valid_si_snr": -float(valid[1]),
            "seconds_per_step": float(step[1]) if step else None,
        }
    return [epochs[key] for key in sorted(epochs)]
