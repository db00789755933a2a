"""Inference: pretrained folders in, separated audio out.

The SpeechBrain pretrained interface (:mod:`~gmsep.inference.pretrained`),
chunked separation of long recordings (:mod:`~gmsep.inference.chunking`) and
the export of a trained experiment to a pretrained folder
(:mod:`~gmsep.inference.export`).

``gmsep.inference.NoiseRobustSeparation`` and
``gmsep.inference.strict_parameter_transfer`` keep the names that folders
exported by earlier versions name in their ``hyperparams.yaml``.
"""

from gmsep.inference.pretrained import (
    NoiseRobustSeparation,
    PretrainedFolderError,
    strict_parameter_transfer,
)

__all__ = [
    "NoiseRobustSeparation",
    "PretrainedFolderError",
    "strict_parameter_transfer",
]
