"""Export of a trained experiment to a pretrained-model folder.

``python train.py hparams/X.yaml`` leaves an experiment folder with the
resolved ``hyperparams.yaml`` (its ``model:`` section included),
checkpoints ``save/CKPT+*/<module>.ckpt`` and ``test_results.csv``.
:func:`export_pretrained` turns its best checkpoint (lowest validation
``si-snr``, the negative SI-SNR) into the folder that
``gmsep.inference.pretrained.NoiseRobustSeparation.from_hparams`` loads, in
the layout SpeechBrain publishes its separators in::

    hyperparams.yaml   sample_rate, the experiment's model section as it was
                       trained (modules included) and a Pretrainer
    encoder.ckpt       one state_dict per module, as checkpointed
    enhancer.ckpt      (absent for baselines without an EnhanceNet)
    masknet.ckpt
    decoder.ckpt
    README.md          the model card: data, configuration, size, results
    separator.onnx     with ``onnx=True`` (``--onnx``): the inference graph
                       (gmsep.inference.onnx_backend)
    separator-int8.onnx   and its dynamic int8 version (gmsep.inference.quantize)

A SepFormer-alone export is a SpeechBrain SepFormer folder: SpeechBrain's
``SepformerSeparation.from_hparams`` loads it too.

Authors
 * gmsep contributors 2026
"""

import csv
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path

import ruamel.yaml
import yaml
from hyperpyyaml import load_hyperpyyaml, resolve_references
from ruamel.yaml.comments import CommentedMap
from speechbrain.utils.checkpoints import Checkpointer

from gmsep.data.outputs import (
    OutputError,
    check_output_folder,
    is_folder_or_above,
)
from gmsep.inference.onnx_backend import (
    ONNX_FILE,
    OPSET,
    export_onnx,
    onnx_parity,
)
from gmsep.inference.quantize import INT8_ONNX_FILE, quantize_onnx
from gmsep.training.checkpointing import read_state_dict
from gmsep.training.experiment import route_overrides
from gmsep.training.legacy_checkpoints import (
    UPGRADE_COMMAND,
    refuse_legacy_checkpoints,
)

logger = logging.getLogger(__name__)

REQUIRED_MODULES = ("encoder", "masknet", "decoder")
HPARAMS_FILE = "hyperparams.yaml"

# Experiment keys reported in the model card's data table when present.
DATA_KEYS = (
    "data_folder",
    "train_data",
    "valid_data",
    "test_data",
    "sample_rate",
    "num_spks",
    "mix_mode",
    "condition",
)


# SI-SNR (dB) of onnxruntime's output against the network's below which an
# ONNX export is refused: float32 rounding alone gives 70 dB and more.
MIN_PARITY_DB = 50.0


class ExportError(ValueError):
    """An experiment folder cannot be exported, or the target is not free."""


def export_pretrained(experiment_dir, out_dir, overwrite=False, onnx=False):
    """Writes the pretrained-model folder of an experiment's best checkpoint.

    The folder is built in a temporary folder beside ``out_dir`` and moved
    in when complete; with ``overwrite``, only a folder this function wrote
    (its ``hyperparams.yaml``, model card and ``.ckpt`` files, nothing
    else) is replaced.

    Arguments
    ---------
    experiment_dir : str or os.PathLike
        The ``output_folder`` of a training run: it holds ``hyperparams.yaml``
        and ``save/CKPT+*/``.
    out_dir : str or os.PathLike
        The folder to write.
    overwrite : bool
        Replace an earlier export in ``out_dir``; refused otherwise.
    onnx : bool
        Also write ``separator.onnx``, checked against the torch network
        on mixtures of several lengths before it is kept.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    ExportError
        Naming the missing file or folder, an ``out_dir`` that is not empty
        without ``overwrite``, or weights that do not fit the configuration.

    Example
    -------
    >>> export_pretrained(getfixture("tmp_path") / "none", "out")
    Traceback (most recent call last):
    ...
    gmsep.inference.export.ExportError: ...none: experiment folder not found
    """
    experiment_dir, out_dir = Path(experiment_dir), Path(out_dir)
    if not experiment_dir.is_dir():
        raise ExportError(f"{experiment_dir}: experiment folder not found")
    hparams_path = experiment_dir / HPARAMS_FILE
    if not hparams_path.is_file():
        raise ExportError(
            f"{hparams_path}: not found (expected the hyperparams.yaml that "
            "train.py writes into the experiment folder)"
        )
    check_export_target(out_dir, experiment_dir)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise ExportError(
                f"{out_dir}: folder is not empty (use overwrite / --overwrite "
                "to replace it)"
            )
        if not (out_dir / HPARAMS_FILE).is_file():
            raise ExportError(
                f"{out_dir}: not a pretrained folder (no {HPARAMS_FILE}); "
                "--overwrite only replaces an earlier export"
            )
        foreign = sorted(
            path.name
            for path in out_dir.iterdir()
            if path.name
            not in (HPARAMS_FILE, "README.md", ONNX_FILE, INT8_ONNX_FILE)
            and not (path.suffix == ".ckpt" and path.is_file())
        )
        if foreign:
            raise ExportError(
                f"{out_dir}: holds files an export does not write "
                f"({', '.join(foreign)}); --overwrite only replaces an "
                "earlier export: move them first"
            )

    experiment = _load_tree(hparams_path)
    model = model_section(experiment, hparams_path)
    checkpoint, selection = find_best_checkpoint(experiment_dir / "save")
    module_names = list(model["modules"])

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent)
    )
    try:
        (staging / HPARAMS_FILE).write_text(
            inference_hparams_text(experiment, hparams_path), encoding="utf-8"
        )
        for name in module_names:
            source = checkpoint.path / f"{name}.ckpt"
            if not source.is_file():
                raise ExportError(
                    f"{source}: not found (the experiment's model section has "
                    f"the modules {', '.join(module_names)})"
                )
            shutil.copyfile(source, staging / f"{name}.ckpt")
        param_counts, loaded = _check_loadable(
            staging, module_names, checkpoint.path
        )
        onnx_report = None
        if onnx:
            onnx_report = _write_onnx(loaded, staging / ONNX_FILE)
        (staging / "README.md").write_text(
            model_card(
                experiment,
                experiment_dir,
                checkpoint,
                selection,
                param_counts,
                read_test_averages(experiment_dir / "test_results.csv"),
                onnx_report,
            ),
            encoding="utf-8",
        )
        # An earlier export (checked above) is set aside, not deleted,
        # until the new one is in place.
        earlier = staging.with_name(staging.name + ".earlier")
        if out_dir.is_dir():
            os.replace(out_dir, earlier)
        os.replace(staging, out_dir)
        shutil.rmtree(earlier, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Exported %s to %s", checkpoint.path, out_dir)
    return out_dir


def check_export_target(out_dir, experiment_dir):
    """Refuses an ``out_dir`` that cannot be written or must never be
    replaced: the experiment being exported or a folder above it, the
    current folder or one above it.

    Arguments
    ---------
    out_dir : pathlib.Path
        The pretrained folder to write.
    experiment_dir : pathlib.Path
        The experiment it is exported from.

    Raises
    ------
    ExportError
        Naming out_dir and the reason.

    Example
    -------
    >>> check_export_target(Path(".."), Path("/elsewhere/demo/1234"))
    Traceback (most recent call last):
    ...
    gmsep.inference.export.ExportError: ..: is the current folder or above it; export into a folder of its own
    """
    if is_folder_or_above(out_dir, experiment_dir):
        raise ExportError(
            f"{out_dir}: holds the experiment being exported ({experiment_dir}); "
            "export into a folder of its own"
        )
    if is_folder_or_above(out_dir, Path.cwd()):
        raise ExportError(
            f"{out_dir}: is the current folder or above it; export into a "
            "folder of its own"
        )
    try:
        # the new folder is staged beside out_dir: its parent must take it
        check_output_folder(out_dir)
        check_output_folder(out_dir.absolute().parent, "--out's parent")
    except OutputError as err:
        raise ExportError(str(err)) from err


def model_section(experiment, hparams_path):
    """The experiment's ``model:`` section, checked.

    Arguments
    ---------
    experiment : ruamel.yaml.comments.CommentedMap
        The experiment's resolved YAML.
    hparams_path : str or os.PathLike
        Where it comes from, for error messages.

    Returns
    -------
    ruamel.yaml.comments.CommentedMap
        With ``num_spks``, the modules and ``modules:``.
    """
    model = experiment.get("model")
    if not isinstance(model, CommentedMap):
        hint = ""
        if "separator" in experiment:
            hint = (
                " (it was written by an earlier gmsep, whose experiment files "
                f"had no sections: run `{UPGRADE_COMMAND} "
                f"{Path(hparams_path).parent}`, then train.py again with the "
                "same output folder: it resumes from the last checkpoint and "
                "rewrites hyperparams.yaml)"
            )
        raise ExportError(f"{hparams_path}: no `model:` section{hint}")
    modules = model.get("modules")
    missing = [
        name
        for name in REQUIRED_MODULES
        if not isinstance(modules, CommentedMap) or name not in modules
    ]
    if missing:
        raise ExportError(
            f"{hparams_path}: the model section's `modules:` lacks "
            f"{', '.join(missing)}"
        )
    if "sample_rate" not in experiment:
        raise ExportError(f"{hparams_path}: no sample_rate")
    return model


def find_best_checkpoint(save_dir):
    """Finds the checkpoint with the lowest validation ``si-snr``.

    Checkpoints saved inside an epoch carry no validation loss; when no
    checkpoint has one, the most recent is used.

    Arguments
    ---------
    save_dir : pathlib.Path
        The experiment's ``save`` folder.

    Returns
    -------
    checkpoint : speechbrain.utils.checkpoints.Checkpoint
        With ``path``, ``meta`` and ``paramfiles``.
    selection : str
        How it was chosen, for the model card.

    Raises
    ------
    ExportError
        When the folder holds no checkpoint of the network's modules.
    """
    if not save_dir.is_dir():
        raise ExportError(f"{save_dir}: checkpoint folder not found")
    checkpointer = Checkpointer(save_dir)
    refuse_legacy_checkpoints(save_dir)

    def has_separator(ckpt):
        return (ckpt.path / "encoder.ckpt").is_file()

    try:
        checkpoint = checkpointer.find_checkpoint(
            min_key="si-snr", ckpt_predicate=has_separator
        )
    except yaml.YAMLError as err:  # SpeechBrain reads every CKPT.yaml
        raise ExportError(
            f"{save_dir}: a checkpoint's CKPT.yaml is not valid YAML "
            f"({' '.join(str(err).split())})"
        ) from err
    if checkpoint is not None:
        return checkpoint, "lowest validation si-snr (negative SI-SNR)"
    checkpoint = checkpointer.find_checkpoint(ckpt_predicate=has_separator)
    if checkpoint is None:
        raise ExportError(
            f"{save_dir}: no CKPT+* folder with an encoder.ckpt (did the "
            "training run save a checkpoint?)"
        )
    logger.warning(
        "No checkpoint of %s has a validation si-snr: exporting the most "
        "recent one, %s",
        save_dir,
        checkpoint.path.name,
    )
    return checkpoint, "most recent (no checkpoint has a validation si-snr)"


def inference_hparams(hparams_path, overrides=None):
    """The pretrained-folder YAML of an experiment (or recipe) file.

    Arguments
    ---------
    hparams_path : str or os.PathLike
        An experiment file with a ``model:`` section.
    overrides : dict, optional
        Values to set before resolving, e.g. ``{"data_folder": "..."}`` for
        a recipe file whose data_folder is a placeholder; routed into the
        sections as on the command line.

    Returns
    -------
    str
        See :func:`inference_hparams_text`.

    Example
    -------
    >>> text = inference_hparams("hparams/demo.yaml")
    >>> "masknet_intra:" in text and "optimizer" not in text
    True
    """
    hparams_path = Path(hparams_path)
    tree = _load_tree(hparams_path, route_overrides(hparams_path, overrides))
    model_section(tree, hparams_path)
    return inference_hparams_text(tree, hparams_path)


def _load_tree(hparams_path, overrides=None):
    """Parses an hparams YAML with every !ref and !include resolved and
    the tags kept: references become YAML anchors and aliases."""
    try:
        with open(hparams_path, encoding="utf-8") as fin:
            resolved = resolve_references(fin, overrides).getvalue()
        tree = ruamel.yaml.YAML().load(resolved)
    except (ruamel.yaml.YAMLError, ValueError, UnicodeDecodeError) as err:
        raise ExportError(
            f"{hparams_path}: invalid YAML ({' '.join(str(err).split())})"
        ) from err
    if not isinstance(tree, CommentedMap):
        raise ExportError(f"{hparams_path}: not a YAML mapping")
    # A derived experiment: the experiment it includes holds the sections.
    while "model" not in tree and isinstance(
        tree.get("experiment"), CommentedMap
    ):
        tree = tree["experiment"]
    return tree


def inference_hparams_text(experiment, source=HPARAMS_FILE):
    """The pretrained folder's hyperparams.yaml: ``sample_rate``, the
    experiment's model section as it was trained, and a Pretrainer that
    loads ``<module>.ckpt`` for every entry of its ``modules:``, from the
    folder the loader is given (SpeechBrain's published layout: no paths).

    Arguments
    ---------
    experiment : ruamel.yaml.comments.CommentedMap
        The experiment's resolved YAML (with its ``model:`` section).
    source : str or os.PathLike
        The experiment YAML, named in the header.

    Returns
    -------
    str
    """
    model = experiment["model"]
    folder = CommentedMap(sample_rate=experiment["sample_rate"])
    folder.update(model)
    body = io.StringIO()
    yaml = ruamel.yaml.YAML()
    yaml.indent(mapping=4, sequence=6, offset=4)  # as the hparams files
    yaml.dump(folder, body)
    hooks = "".join(
        f"        {name}: !name:gmsep.inference.pretrained.strict_parameter_transfer\n"
        for name in model["modules"]
    )
    return (
        "# ############################################################################\n"
        "# Pretrained noise-robust separator (gmsep): the model section of\n"
        f"# {Path(source).resolve()}\n"
        "# Load with gmsep.inference.pretrained.NoiseRobustSeparation.from_hparams(source=<this folder>)\n"
        "# ############################################################################\n\n"
        + body.getvalue()
        + "\n# <module>.ckpt of every module, from the folder given to the loader\n"
        "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n"
        "    loadables: !ref <modules>\n"
        "    # strict: weights that do not fit the modules are an error, not a warning\n"
        "    custom_hooks:\n" + hooks
    )


def _check_loadable(out_dir, module_names, checkpoint_dir):
    """Builds the exported configuration and loads every .ckpt strictly
    (read from checkpoint_dir, which errors then name: the staged copies
    are the same bytes).

    Returns the parameter count of every module (and ``total``), so the model
    card reports the model that was actually loaded.
    """
    with open(out_dir / HPARAMS_FILE, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin)
    counts = {}
    for name in module_names:
        module = hparams["modules"][name]
        path = checkpoint_dir / f"{name}.ckpt"
        try:
            module.load_state_dict(read_state_dict(path, ExportError))
        except RuntimeError as err:
            raise ExportError(
                f"{path}: the weights do not fit the {name} of the experiment's "
                f"hyperparams.yaml ({str(err).splitlines()[0]})"
            ) from err
        counts[name] = sum(p.numel() for p in module.parameters())
    counts["total"] = sum(counts.values())
    return counts, hparams


def _write_onnx(hparams, path):
    """Exports the loaded network to path and checks onnxruntime's outputs
    against the network's; returns what the model card says about it."""
    import onnx
    import onnxruntime
    import torch

    from gmsep.model import UnifiedSeparator

    separator = hparams.get("separator")
    if separator is None:  # a section without one: built as the loader does
        modules = hparams["modules"]
        separator = UnifiedSeparator(
            modules["encoder"],
            modules["masknet"],
            modules["decoder"],
            enhancer=modules.get("enhancer"),
            num_spks=hparams["num_spks"],
        )
    outputs = export_onnx(separator, path)
    parity = onnx_parity(separator, path, hparams["sample_rate"])
    worst = min(parity.values())
    if worst < MIN_PARITY_DB:
        raise ExportError(
            f"{path}: onnxruntime's output differs from the network's "
            f"(SI-SNR {worst:.1f} dB < {MIN_PARITY_DB} dB); not exported"
        )
    int8_path = path.with_name(INT8_ONNX_FILE)
    quantize_onnx(path, int8_path)
    return {
        "outputs": outputs,
        "parity_db": parity,
        # how far int8 rounding moves the output (not checked: it is
        # measured on speech, see the README)
        "int8_parity_db": onnx_parity(
            separator, int8_path, hparams["sample_rate"]
        ),
        "versions": (
            f"torch {torch.__version__}, onnx {onnx.__version__}, "
            f"onnxruntime {onnxruntime.__version__}"
        ),
    }


def read_test_averages(csv_path):
    """Reads the ``avg`` row of a ``test_results.csv``.

    Arguments
    ---------
    csv_path : pathlib.Path
        The experiment's test results (snt_id, sdr, sdr_i, si-snr, si-snr_i).

    Returns
    -------
    averages : dict or None
        Metric -> float and ``count`` (the number of test utterances); None
        when the file or its ``avg`` row is missing.

    Example
    -------
    >>> path = getfixture("tmp_path") / "test_results.csv"
    >>> _ = path.write_text("snt_id,si-snr_i\\na,10.0\\nb,12.0\\navg,11.0\\n")
    >>> read_test_averages(path)
    {'si-snr_i': 11.0, 'count': 2}
    """
    if not csv_path.is_file():
        return None
    with open(csv_path, newline="", encoding="utf-8") as fin:
        rows = list(csv.DictReader(fin))
    averages = [row for row in rows if row.get("snt_id") == "avg"]
    if not averages:
        return None
    result = {
        key: float(value)
        for key, value in averages[-1].items()
        if key != "snt_id"
    }
    result["count"] = len(rows) - len(averages)
    return result


def _scalars(mapping, skip=()):
    """The entries of a YAML mapping that are plain values, not objects."""
    return {
        key: value
        for key, value in mapping.items()
        if key not in skip
        and not key.startswith("__")
        and (value is None or isinstance(value, (bool, int, float, str)))
    }


def _format_value(value):
    """A YAML scalar as the model card shows it."""
    return "null" if value is None else str(value)


def model_card(
    tree,
    experiment_dir,
    checkpoint,
    selection,
    param_counts,
    results,
    onnx_report=None,
):
    """The README.md of a pretrained folder.

    Arguments
    ---------
    tree : ruamel.yaml.comments.CommentedMap
        The experiment's resolved YAML.
    experiment_dir : pathlib.Path
        The experiment folder.
    checkpoint : speechbrain.utils.checkpoints.Checkpoint
        The exported checkpoint.
    selection : str
        How the checkpoint was chosen.
    param_counts : dict
        Module -> parameter count, and ``total``.
    results : dict or None
        Test averages (see :func:`read_test_averages`).
    onnx_report : dict, optional
        How ``separator.onnx`` was made (see :func:`_write_onnx`).

    Returns
    -------
    str
    """
    enhancer = "enhancer" in param_counts
    kind = (
        "unified speech enhancement + separation network (EnhanceNet + MaskNet)"
        if enhancer
        else "separator without EnhanceNet (baseline)"
    )
    name = tree.get("experiment_name", experiment_dir.name)

    def table(values):
        rows = [f"| {k} | {_format_value(v)} |" for k, v in values.items()]
        return "| key | value |\n|---|---|\n" + "\n".join(rows)

    data = {key: tree[key] for key in DATA_KEYS if key in tree}
    paths = ("experiment_name", "output_folder", "save_folder", "train_log")
    training = _scalars(tree, skip=(*DATA_KEYS, *paths))
    training.update(
        _scalars(tree.get("training") or {}, skip=(*DATA_KEYS, *paths))
    )

    meta = ", ".join(
        f"{key} = {value}"
        for key, value in checkpoint.meta.items()
        if not isinstance(value, (dict, list))
    )
    params = "\n".join(
        f"| {module} | {count:,} ({count / 1e6:.2f} M) |"
        for module, count in param_counts.items()
    )
    if results is None:
        results_text = "No test_results.csv in the experiment folder."
    else:
        results_text = (
            f"Averages over {results['count']} test mixtures of that run "
            "(SDR and SI-SNR in dB, improvements over the input mixture; "
            "PESQ as MOS-LQO, STOI 0 to 1):\n\n"
            "| metric | value |\n|---|---|\n"
            + "\n".join(
                f"| {key} | {value:.2f} |"
                for key, value in results.items()
                if key != "count"
            )
        )
    onnx_text = "" if onnx_report is None else onnx_section(onnx_report)
    has_enhancer_usage = (
        'enhanced = model.enhance_file("noisy.wav")  # [1, T], the SE branch\n'
        if enhancer
        else ""
    )
    return f"""# {name}: noise-robust speech separation (gmsep)

A {kind} for {tree.get("num_spks")} speakers at {tree["sample_rate"]} Hz,
trained with gmsep (Hu et al., ICASSP 2023: unifying speech enhancement and
separation with gradient modulation) on SpeechBrain.

Exported from `{experiment_dir.resolve()}`, checkpoint `{checkpoint.path.name}`
({selection}; {meta}).

## Training data

{table(data)}

## Model (the model section)

{table(_scalars(tree["model"], skip=("num_spks",)))}

## Training

{table(training)}

## Parameters

| module | parameters |
|---|---|
{params}

## Test results

{results_text}

## Usage

```python
from gmsep.inference.pretrained import NoiseRobustSeparation

model = NoiseRobustSeparation.from_hparams(source="<this folder>")
est_sources = model.separate_file("mix.wav")  # [1, T, S]
long_sources = model.separate_file("meeting.wav", chunk_seconds=8, overlap_seconds=2)
{has_enhancer_usage}```

From the command line:

```
python -m gmsep separate mix.wav --model <this folder> --out separated/
python -m gmsep evaluate --model <this folder> --csv test.csv --out eval/
```

Only local folders are loaded (no download). The folder has SpeechBrain's
published layout (hyperparams.yaml and one `<module>.ckpt` per module), so
SpeechBrain's own loaders take it as well; a SepFormer without EnhanceNet
loads with `speechbrain.inference.separation.SepformerSeparation`.
{onnx_text}"""


def onnx_section(report):
    """The model card's section on ``separator.onnx``."""
    parity = ", ".join(
        f"{shape}: {db:.1f} dB" for shape, db in report["parity_db"].items()
    )
    int8_parity = ", ".join(
        f"{shape}: {db:.1f} dB"
        for shape, db in report["int8_parity_db"].items()
    )
    outputs = ", ".join(f"`{name}`" for name in report["outputs"])
    return f"""
## ONNX

`{ONNX_FILE}` is the same network as one ONNX graph (opset {OPSET}), input
`mix` [batch, time] at the model's sample rate, outputs {outputs}
([batch, time, speakers] and [batch, time]); batch and time are dynamic
axes. It was traced from the loaded checkpoint with `torch.onnx.export`
(the TorchScript-based exporter, `dynamo=False`) through
`gmsep.inference.onnx_backend.SeparationGraph`, which calls the Decoder's
transposed convolution without SpeechBrain's squeeze (that squeeze depends
on the traced batch size); {report["versions"]}. Checked at export:
onnxruntime against torch on random mixtures (batch x samples), lowest
SI-SNR over the outputs: {parity}.

`{INT8_ONNX_FILE}` is its dynamic int8 quantisation
(`onnxruntime.quantization.quantize_dynamic` of the matrix products with
constant weights: int8 weights, activations quantised per call;
`gmsep.inference.quantize`); the
same check gives {int8_parity} (random mixtures: a bound on how much int8
rounding moves the output, not a measure of quality on speech).

```
python -m gmsep separate mix.wav --model <this folder> --out separated/ --backend onnxruntime
python -m gmsep separate mix.wav --model <this folder> --out separated/ --backend onnxruntime --quantize int8
```
"""
