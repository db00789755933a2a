"""Training: the Brain subclass and what a training run needs around it.

The Brain's hooks (:mod:`~gmsep.training.brain`), multi-process reductions
(:mod:`~gmsep.training.distributed`), atomic checkpoints
(:mod:`~gmsep.training.checkpointing`) and the checks of a configuration
before any work starts (:mod:`~gmsep.training.config_checks`).
"""
