"""The paper's configurations, checked from the files: every experiment of
hparams/ loads (nothing is trained), the paper files build networks of the
paper's sizes (Hu et al., ICASSP 2023, Table 1), hold the paper's values,
and the README's "Faithful values and switches" table states the same
values."""

import os
import re

import pytest
import ruamel.yaml
from gmsep.training.experiment import load_experiment
from hparams_snapshot import experiment_files
from tiny_config import REPO

# The output folder is each test's tmp_path: loading creates its save/.
OVERRIDES = {"data_folder": "/data/LibriMix"}

# The separator's parameters, in millions rounded to 0.1, by file. The
# paper's counts are for 2 speakers; with 3 only the masks' output layer
# grows (unified DPRNN: 19.75 M, DPRNN: 14.68 M).
PAPER_PARAMS = {
    "sepformer-gm-libri2mix.yaml": 29.2,
    "sepformer-gm-libri3mix.yaml": 29.2,
    "sepformer-published-libri2mix.yaml": 29.2,
    "sepformer-published-libri3mix.yaml": 29.2,
    "sepformer-libri2mix.yaml": 25.7,
    "sepformer-libri3mix.yaml": 25.7,
    "dprnn-gm-libri2mix.yaml": 19.7,
    "dprnn-gm-libri3mix.yaml": 19.7,
    "dprnn-libri2mix.yaml": 14.6,
    "dprnn-libri3mix.yaml": 14.7,
}

# The paper's values (the README's table states them).
COMMON = {
    "sample_rate": 8000,
    "kernel_size": 16,
    "N_encoder_out": 256,
    "chunk_size": 250,
    "lr": 0.00015,
    "N_epochs": 120,
    "batch_size": 1,
    "max_grad_norm": 5,
    "precision": "fp32",
    "use_speedperturb": True,
    "training_signal_len": None,
    "dynamic_mixing": False,
    "dynamic_mixing_levels": "librimix",
    "pretrained_separator": None,
    "num_workers": 3,
    "factor": 0.5,
    "patience": 2,
}
SEPFORMER = {
    **COMMON,
    "d_model": 256,
    "nhead": 8,
    "d_ffn": 1024,
    "masknet_blocks": 2,
    "masknet_layers": 8,
    "dont_halve_until_epoch": 5,
}
DPRNN = {
    **COMMON,
    "rnn_hidden": 256,
    "masknet_blocks": 6,
    "dont_halve_until_epoch": 85,
}
UNIFIED = {
    "enhancer_blocks": 2,
    "se_weight": 0.1,
    "se_reduction": "sum",
    "se_detach_target": False,
    "se_weight_decay": "constant",
    "gm_mode": "project",
    "gm_params": "encoder_enhancer",
}
FAITHFUL = {
    "sepformer-gm": {**SEPFORMER, **UNIFIED, "enhancer_layers": 1},
    "sepformer-published": {
        **SEPFORMER,
        **UNIFIED,
        "enhancer_layers": 1,
        "gm_mode": "published",
    },
    "sepformer": {**SEPFORMER, "gm_mode": "none"},
    "dprnn-gm": {**DPRNN, **UNIFIED},
    "dprnn": {**DPRNN, "gm_mode": "none"},
}
SCHEDULER_KEYS = ("dont_halve_until_epoch", "factor", "patience")


def setting(hparams, key):
    """A setting as the experiment resolves it (the scheduler's from the
    scheduler object, which the DPRNN files change)."""
    if key in SCHEDULER_KEYS:
        return getattr(hparams["lr_scheduler"], key)
    return hparams[key]


def paper_file(name):
    return os.path.join(REPO, "hparams", name)


@pytest.mark.parametrize(
    "hparams_file", experiment_files(), ids=os.path.basename
)
def test_every_experiment_file_loads(hparams_file, tmp_path):
    hparams, _ = load_experiment(
        hparams_file, {**OVERRIDES, "output_folder": str(tmp_path)}
    )
    assert hparams["separator"].num_spks == hparams["num_spks"]


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_paper_files_build_the_paper_sizes_and_values(name, tmp_path):
    hparams, _ = load_experiment(
        paper_file(name), {**OVERRIDES, "output_folder": str(tmp_path)}
    )
    count = sum(p.numel() for p in hparams["separator"].parameters())
    assert round(count / 1e6, 1) == PAPER_PARAMS[name], count
    assert hparams["num_spks"] == (3 if "libri3mix" in name else 2)
    faithful = FAITHFUL[name.rsplit("-", 1)[0]]
    for key, value in faithful.items():
        assert setting(hparams, key) == value, key
    assert (hparams["separator"].enhancer is None) == (
        "se_weight" not in faithful
    )


def readme_faithful_table():
    """``key -> [values]`` from the README's "Faithful values and switches"
    table: the backticked names of the first column, the backticked values
    of the second (one per name, or one per backbone: SepFormer, DPRNN)."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as fin:
        text = fin.read()
    table = text.split("### Faithful values and switches", 1)[1]
    table = table.split("\n\n", 2)[2].split("\n\n", 1)[0]
    yaml = ruamel.yaml.YAML(typ="safe")
    rows = {}
    for line in table.splitlines()[2:]:
        first, second = line.split("|")[1:3]
        keys = re.findall(r"`([^`]+)`", first)
        values = [yaml.load(v) for v in re.findall(r"`([^`]+)`", second)]
        if len(keys) == len(values):
            rows.update(
                {key: [value] for key, value in zip(keys, values, strict=True)}
            )
        else:
            (key,) = keys
            rows[key] = values
    return rows


def test_the_readme_table_states_the_files_values():
    rows = readme_faithful_table()
    backbones = [FAITHFUL["sepformer-gm"], FAITHFUL["dprnn-gm"]]
    for key, values in rows.items():
        expected = []
        for faithful in backbones:
            if key in faithful and faithful[key] not in expected:
                expected.append(faithful[key])
        assert values == expected, key
    # every paper value the files hold is in the table
    missing = set(FAITHFUL["sepformer-gm"]) - set(rows)
    assert missing <= set(COMMON) - {"chunk_size", "lr", "N_epochs"}
