"""Export of a trained experiment to a pretrained-model folder.

``python train.py hparams/X.yaml`` leaves an experiment folder with the
resolved ``hyperparams.yaml``, checkpoints ``save/CKPT+*/separator.ckpt`` and
``test_results.csv``. :func:`export_pretrained` turns its best checkpoint
(lowest validation ``si-snr``, the negative SI-SNR) into the folder that
``gmsep.inference.pretrained.NoiseRobustSeparation.from_hparams`` loads::

    hyperparams.yaml   only the inference modules, a `modules:` dict and a
                       Pretrainer whose paths point to the files below
    encoder.ckpt       one state_dict per module, split from separator.ckpt
    enhancer.ckpt      (absent for baselines without an EnhanceNet)
    masknet.ckpt
    decoder.ckpt
    README.md          the model card: data, configuration, size, results

Authors
 * gmsep contributors 2026
"""

import csv
import io
import logging
import shutil
from pathlib import Path

import ruamel.yaml
import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from speechbrain.utils.checkpoints import Checkpointer

logger = logging.getLogger(__name__)

# The UnifiedSeparator's sub-modules, in the order of the forward pass.
MODULE_NAMES = ("encoder", "enhancer", "masknet", "decoder")
REQUIRED_MODULES = ("encoder", "masknet", "decoder")
HPARAMS_FILE = "hyperparams.yaml"
CKPT_FILE = "separator.ckpt"

# Experiment keys reported in the model card when they are present.
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
CONFIG_KEYS = (
    "N_encoder_out",
    "kernel_size",
    "kernel_stride",
    "d_model",
    "nhead",
    "d_ffn",
    "chunk_size",
    "enhancer_blocks",
    "enhancer_layers",
    "masknet_blocks",
    "masknet_layers",
    "gm_mode",
    "gm_remedy_k",
    "se_weight",
    "se_reduction",
    "se_detach_target",
    "training_signal_len",
    "use_speedperturb",
    "dynamic_mixing",
    "N_epochs",
    "batch_size",
    "lr",
    "seed",
)


class ExportError(ValueError):
    """An experiment folder cannot be exported, or the target is not free."""


def export_pretrained(experiment_dir, out_dir, overwrite=False):
    """Writes the pretrained-model folder of an experiment's best checkpoint.

    Arguments
    ---------
    experiment_dir : str or os.PathLike
        The ``output_folder`` of a training run: it holds ``hyperparams.yaml``
        and ``save/CKPT+*/separator.ckpt``.
    out_dir : str or os.PathLike
        The folder to write (created if needed).
    overwrite : bool
        Replace the content of a non-empty ``out_dir``; refused otherwise.

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
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise ExportError(
                f"{out_dir}: folder is not empty (use overwrite / --overwrite "
                "to replace it)"
            )
        shutil.rmtree(out_dir)

    checkpoint, selection = find_best_checkpoint(experiment_dir / "save")
    tree = _load_tree(hparams_path)
    module_names = _module_names(tree, hparams_path)
    state_dicts = split_state_dict(
        torch.load(
            checkpoint.path / CKPT_FILE, map_location="cpu", weights_only=True
        ),
        module_names,
        checkpoint.path / CKPT_FILE,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / HPARAMS_FILE).write_text(
        inference_hparams_text(tree, module_names, hparams_path),
        encoding="utf-8",
    )
    for name, state_dict in state_dicts.items():
        torch.save(state_dict, out_dir / f"{name}.ckpt")
    param_counts = _check_loadable(out_dir, module_names)
    (out_dir / "README.md").write_text(
        model_card(
            tree,
            experiment_dir,
            checkpoint,
            selection,
            param_counts,
            read_test_averages(experiment_dir / "test_results.csv"),
        ),
        encoding="utf-8",
    )
    logger.info("Exported %s to %s", checkpoint.path, out_dir)
    return out_dir


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
        When the folder holds no checkpoint with a ``separator.ckpt``.
    """
    if not save_dir.is_dir():
        raise ExportError(f"{save_dir}: checkpoint folder not found")
    checkpointer = Checkpointer(save_dir)

    def has_separator(ckpt):
        return (ckpt.path / CKPT_FILE).is_file()

    checkpoint = checkpointer.find_checkpoint(
        min_key="si-snr", ckpt_predicate=has_separator
    )
    if checkpoint is not None:
        return checkpoint, "lowest validation si-snr (negative SI-SNR)"
    checkpoint = checkpointer.find_checkpoint(ckpt_predicate=has_separator)
    if checkpoint is None:
        raise ExportError(
            f"{save_dir}: no CKPT+* folder with a {CKPT_FILE} (did the "
            "training run save a checkpoint?)"
        )
    logger.warning(
        "No checkpoint of %s has a validation si-snr: exporting the most "
        "recent one, %s",
        save_dir,
        checkpoint.path.name,
    )
    return checkpoint, "most recent (no checkpoint has a validation si-snr)"


def split_state_dict(state_dict, module_names, source="separator.ckpt"):
    """Splits a UnifiedSeparator state_dict into one state_dict per module.

    Arguments
    ---------
    state_dict : dict
        Keys ``encoder.*``, ``enhancer.*``, ``masknet.*``, ``decoder.*``.
    module_names : sequence of str
        The modules the configuration defines.
    source : str or os.PathLike
        Where the state_dict comes from, for error messages.

    Returns
    -------
    dict
        Module name -> its state_dict (prefix removed).

    Raises
    ------
    ExportError
        When a key belongs to no module, or a module has no parameters.

    Example
    -------
    >>> sd = {"encoder.w": 1, "masknet.w": 2, "decoder.w": 3}
    >>> split_state_dict(sd, ["encoder", "masknet", "decoder"])["masknet"]
    {'w': 2}
    """
    parts = {name: {} for name in module_names}
    for key, value in state_dict.items():
        name, _, param = key.partition(".")
        if name not in parts:
            raise ExportError(
                f"{source}: parameter {key!r} belongs to no module of the "
                f"configuration ({', '.join(module_names)})"
            )
        parts[name][param] = value
    empty = [name for name, part in parts.items() if not part]
    if empty:
        raise ExportError(
            f"{source}: no parameters for {', '.join(empty)} (checkpoint and "
            "configuration describe different models)"
        )
    return parts


def inference_hparams(hparams_path, overrides=None):
    """The inference-only YAML of an experiment's (or a recipe's) hparams file.

    Arguments
    ---------
    hparams_path : str or os.PathLike
        A YAML with a ``separator: !new:gmsep.model.UnifiedSeparator`` entry.
    overrides : dict, optional
        Values to set before resolving, e.g. ``{"data_folder": "..."}`` for
        a recipe file whose data_folder is a placeholder.

    Returns
    -------
    str
        See :func:`inference_hparams_text`; load it with
        ``load_hyperpyyaml(text, {"pretrained_path": folder})``.

    Example
    -------
    >>> text = inference_hparams("hparams/demo.yaml")
    >>> "masknet_intra:" in text and "optimizer" not in text
    True
    """
    hparams_path = Path(hparams_path)
    tree = _load_tree(hparams_path, overrides)
    return inference_hparams_text(
        tree, _module_names(tree, hparams_path), hparams_path
    )


def _load_tree(hparams_path, overrides=None):
    """Parses an hparams YAML with every !ref resolved and tags kept.

    Resolving turns references into YAML anchors and aliases, so each
    module node carries all it depends on: its closure comes with it.
    """
    with open(hparams_path, encoding="utf-8") as fin:
        resolved = resolve_references(fin, overrides).getvalue()
    tree = ruamel.yaml.YAML().load(resolved)
    if not isinstance(tree, CommentedMap):
        raise ExportError(f"{hparams_path}: not a YAML mapping")
    return tree


def _module_names(tree, hparams_path):
    """The modules of the experiment's ``separator`` (enhancer only if set)."""
    separator = tree.get("separator")
    if not isinstance(separator, CommentedMap):
        raise ExportError(
            f"{hparams_path}: no `separator: !new:gmsep.model.UnifiedSeparator` "
            "entry"
        )
    missing = [name for name in REQUIRED_MODULES if separator.get(name) is None]
    if missing:
        raise ExportError(
            f"{hparams_path}: the separator defines no {', '.join(missing)}"
        )
    if "sample_rate" not in tree:
        raise ExportError(f"{hparams_path}: no sample_rate")
    return [name for name in MODULE_NAMES if separator.get(name) is not None]


def _containers(node, found):
    """Collects the ids of every mapping and sequence inside node."""
    if isinstance(node, (CommentedMap, CommentedSeq)):
        if id(node) in found:
            return
        found.add(id(node))
        children = node.values() if isinstance(node, CommentedMap) else node
        for child in children:
            _containers(child, found)


def inference_hparams_text(tree, module_names, source="hyperparams.yaml"):
    """The pretrained folder's hyperparams.yaml.

    It keeps the separator, its modules and the experiment's named entries
    they depend on (e.g. ``masknet_intra``), plus ``sample_rate``,
    ``num_spks``, a ``modules:`` dict and a Pretrainer whose paths are
    ``<pretrained_path>/<module>.ckpt``. ``pretrained_path`` is a
    placeholder that the loader sets to the folder, so a copied or moved
    folder never loads weights from its old place.

    Arguments
    ---------
    tree : ruamel.yaml.comments.CommentedMap
        The experiment's resolved YAML.
    module_names : sequence of str
        The modules to keep (``enhancer`` only for the unified model).
    source : str or os.PathLike
        The experiment YAML, named in the header.

    Returns
    -------
    str
    """
    separator = tree["separator"]
    needed = set()
    _containers(separator, needed)

    kept = CommentedMap()
    kept["sample_rate"] = tree["sample_rate"]
    kept["num_spks"] = separator.get("num_spks", tree.get("num_spks"))
    for key, value in tree.items():
        if id(value) in needed and key not in ("separator", *MODULE_NAMES):
            kept[key] = value
    for name in module_names:
        kept[name] = separator[name]
    kept["separator"] = separator
    body = io.StringIO()
    ruamel.yaml.YAML().dump(kept, body)

    def entries(value):
        return "".join(f"    {name}: {value(name)}\n" for name in module_names)

    return (
        "# ############################################################################\n"
        "# Pretrained noise-robust separator (gmsep): inference modules only.\n"
        f"# Exported from {Path(source).resolve()}\n"
        "# Load with gmsep.inference.pretrained.NoiseRobustSeparation.from_hparams(source=<this folder>)\n"
        "# ############################################################################\n\n"
        + body.getvalue()
        + "\n# The folder holding this file: set by the loader (see README.md).\n"
        "pretrained_path: !PLACEHOLDER\n\n"
        "modules:\n"
        + entries(lambda name: f"!ref <{name}>")
        + "\npretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n"
        "  loadables:\n"
        + entries(lambda name: f"!ref <{name}>")
        + "  paths:\n"
        + entries(lambda name: f"!ref <pretrained_path>/{name}.ckpt")
        + "  # strict: weights that do not fit the modules are an error, not a warning\n"
        "  custom_hooks:\n"
        + entries(
            lambda name: "!name:gmsep.inference.pretrained.strict_parameter_transfer"
        )
    )


def _check_loadable(out_dir, module_names):
    """Builds the exported configuration and loads every .ckpt strictly.

    Returns the parameter count of every module (and ``total``), so the model
    card reports the model that was actually loaded.
    """
    with open(out_dir / HPARAMS_FILE, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, {"pretrained_path": str(out_dir)})
    counts = {}
    for name in module_names:
        module = hparams["modules"][name]
        path = out_dir / f"{name}.ckpt"
        try:
            module.load_state_dict(torch.load(path, weights_only=True))
        except RuntimeError as err:
            raise ExportError(
                f"{path}: the weights do not fit the {name} of the experiment's "
                f"hyperparams.yaml ({str(err).splitlines()[0]})"
            ) from err
        counts[name] = sum(p.numel() for p in module.parameters())
    counts["total"] = sum(counts.values())
    return counts


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


def _format_value(value):
    """A YAML scalar as the model card shows it."""
    return "null" if value is None else str(value)


def model_card(
    tree, experiment_dir, checkpoint, selection, param_counts, results
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

    def table(keys):
        rows = [
            f"| {key} | {_format_value(tree[key])} |"
            for key in keys
            if key in tree
        ]
        return "| key | value |\n|---|---|\n" + "\n".join(rows)

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
            "(dB; improvements over the input mixture):\n\n"
            "| metric | value |\n|---|---|\n"
            + "\n".join(
                f"| {key} | {value:.2f} |"
                for key, value in results.items()
                if key != "count"
            )
        )
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

{table(DATA_KEYS)}

## Configuration

{table(CONFIG_KEYS)}

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

Only local folders are loaded (no download). With SpeechBrain's own loader,
give the folder twice: `Pretrained.from_hparams(source=folder,
overrides={{"pretrained_path": folder}})`.
"""
