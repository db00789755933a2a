#!/usr/bin/env python3
"""Recipe for training a noise-robust speech separation system: a speech
enhancement front-end and a SepFormer (or DPRNN) separator unified in one
network, trained end to end with an SS and an SE loss whose gradients are
reconciled by gradient modulation (Hu et al., ICASSP 2023).

To run this recipe:
> python train.py hparams/sepformer-gm-libri2mix.yaml --data_folder /path/to/LibriMix

On several GPUs:
> torchrun --nproc_per_node=4 train.py hparams/sepformer-gm-libri2mix.yaml --data_folder ...

The experiment folder (results/<experiment>/<seed>/) receives the logs, the
checkpoints and, after testing the best checkpoint, test_results.csv.

Authors
 * gmsep contributors 2026
"""

import contextlib
import datetime
import io
import os
import sys
from pathlib import Path

import speechbrain as sb
import yaml
from gmsep.data.audio import check_csv_audio
from gmsep.data.columns import wav_columns
from gmsep.data.outputs import check_output_folder, write_text
from gmsep.data.pipelines import dataio_prep
from gmsep.training.brain import NoiseRobustSeparationBrain
from gmsep.training.config_checks import (
    ConfigError,
    check_config,
    check_csv_speakers,
    check_hparams_file,
)
from gmsep.training.distributed import leave_process_group
from gmsep.training.experiment import load_experiment
from gmsep.training.legacy_checkpoints import refuse_legacy_checkpoints
from gmsep.training.warm_start import load_separator, separator_pretrainer
from hyperpyyaml import resolve_references
from speechbrain.utils.distributed import if_main_process, run_on_main

EXIT_USER_ERROR = 2
DATA_KEYS = ("train_data", "valid_data", "test_data")


def check_prepared_data(hparams):
    """Checks every audio file of the prepared CSVs (headers only) before
    any training starts."""
    columns = wav_columns(hparams["num_spks"])
    for key in DATA_KEYS:
        check_csv_speakers(hparams[key], hparams["num_spks"])
        check_csv_audio(hparams[key], columns, hparams["sample_rate"])


def save_hyperparams(hparams_file, overrides, output_folder):
    """Writes the experiment's hyperparams.yaml as SpeechBrain's
    create_experiment_directory does, but atomically: a run killed while
    writing it leaves the earlier one, which the export reads."""
    with open(hparams_file, encoding="utf-8") as fin:
        resolved = resolve_references(fin, overrides).getvalue()
    header = (
        f"# Generated {datetime.date.today()} from:\n"
        f"# {os.path.abspath(hparams_file)}\n# yamllint disable\n"
    )
    write_text(Path(output_folder) / "hyperparams.yaml", header + resolved)


def written_by_this_run(settings):
    """The experiment's folders and CSVs that do not exist yet: what a run
    that then fails a check must remove again."""
    keys = ("output_folder", "save_folder", *DATA_KEYS)
    paths = [Path(str(settings[key])) for key in keys if key in settings]
    return [path for path in paths if not path.exists()]


def remove_created(paths):
    """Removes what a failed start created of paths (folders only if
    empty): the experiment folder is left as the run found it."""
    for path in reversed(paths):  # files first, then folders
        if path.is_file():
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def parse_arguments(argv):
    """SpeechBrain's command line, whose own errors (a run option's value
    of the wrong type) become one ConfigError instead of a usage block."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return sb.parse_arguments(argv)
    except SystemExit as exit:
        if exit.code == 0:  # --help
            print(stderr.getvalue(), end="", file=sys.stderr)
            raise
        lines = stderr.getvalue().strip().splitlines() or ["bad arguments"]
        raise ConfigError(lines[-1].split("error: ", 1)[-1]) from None


def main(argv):
    """Checks the configuration and the data, then trains and tests."""
    hparams_file, run_opts, overrides = parse_arguments(argv)
    settings = check_hparams_file(hparams_file, overrides)
    # loading builds the checkpointer, which creates save_folder
    check_output_folder(str(settings["output_folder"]), "output_folder")
    created = written_by_this_run(settings)
    try:
        hparams, overrides = load_experiment(hparams_file, overrides)
        check_config(hparams, run_opts)
        refuse_legacy_checkpoints(hparams["save_folder"])
        pretrained_separator = separator_pretrainer(hparams)

        sb.utils.distributed.ddp_init_group(run_opts)
        run_on_main(hparams["prepare_data"])
        run_on_main(check_prepared_data, kwargs={"hparams": hparams})
    except (ValueError, OSError):
        if if_main_process():
            remove_created(created)
        raise
    # Only now that every check passed: hyperparams.yaml, logs, env.log.
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"]
    )
    run_on_main(
        save_hyperparams,
        args=[hparams_file, overrides, hparams["output_folder"]],
    )
    datasets = dataio_prep(hparams)
    if pretrained_separator is not None:
        # Before fit: a checkpoint of this experiment, if any, then wins.
        load_separator(pretrained_separator)

    separation_brain = NoiseRobustSeparationBrain(
        modules=hparams["modules"],
        opt_class=hparams["optimizer"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    separation_brain.fit(
        separation_brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["dataloader_opts"],
        valid_loader_kwargs=hparams["dataloader_opts_valid"],
    )
    separation_brain.evaluate(
        datasets["test"],
        min_key="si-snr",
        test_loader_kwargs=hparams["dataloader_opts_test"],
    )
    if if_main_process():
        results = separation_brain.test_averages
        print(
            f"Test ({len(separation_brain.test_results)} mixtures): "
            f"SI-SNRi {results['si-snr_i']:.2f} dB, "
            f"SDRi {results['sdr_i']:.2f} dB"
            + "".join(
                f", {name.upper()} {results[name]:.2f}"
                for name in separation_brain.perceptual_names
            )
            + "; per-utterance results in "
            f"{hparams['output_folder']}/test_results.csv"
        )
    # Stops the backend's threads before the interpreter exits.
    leave_process_group()
    return 0


def run(argv):
    """Runs :func:`main`; a configuration or data error (every one is a
    ValueError naming the setting or file), a checkpoint's CKPT.yaml that
    is not YAML or a file-system error is
    printed as one line per problem, exit code 2; ``--debug``
    (SpeechBrain's few-batch run) shows its traceback instead."""
    try:
        return main(argv)
    except (ValueError, OSError, yaml.YAMLError) as err:
        if "--debug" in argv:
            raise
        if isinstance(err, OSError) and err.filename is not None:
            lines = [f"{err.filename}: {err.strerror}"]
        else:
            lines = str(err).splitlines() or [type(err).__name__]
        for line in lines:
            print(f"train.py: error: {line}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
