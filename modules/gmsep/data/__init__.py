"""Data: audio files and CSVs in, training items out.

Audio reading and checking (:mod:`~gmsep.data.audio`), the prepared CSVs'
columns, the SpeechBrain data pipelines (:mod:`~gmsep.data.pipelines`),
training-time augmentation (:mod:`~gmsep.data.augment`) and dynamic mixing
(:mod:`~gmsep.data.dynamic_mixing`). Knows nothing of models or training.
"""
