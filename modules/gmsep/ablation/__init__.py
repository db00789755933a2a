"""Ablations: what each part of the method buys.

An ablation trains several variants of one experiment (a different
hparams file, or the same with other settings) for the same number of
steps, with the same data order, over several seeds; tests each; and
reports every variant's test SI-SNRi and SDRi with the paired difference
to a reference variant and its 95 % confidence interval::

    python -m gmsep.ablation hparams/ablations/demo.yaml --data_folder data/demo/Libri2Mix

- ``spec``: the ablation file (variants, seeds, common settings);
- ``runs``: one ``train.py`` run per variant and seed, resumable;
- ``statistics``: means, standard deviations, the paired bootstrap;
- ``report``: ``ablation.json``, ``ablation.md`` and the validation curves.

Authors
 * gmsep contributors 2026
"""
