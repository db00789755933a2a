"""Data: audio files and CSVs in, training items out.

Audio reading, checking and writing (:mod:`~gmsep.data.audio`), the
recordings a command is given (:mod:`~gmsep.data.inputs`), the prepared
CSVs' columns (:mod:`~gmsep.data.columns`), the level rule of a noisy
mixture (:mod:`~gmsep.data.mixing`), the SpeechBrain data pipelines
(:mod:`~gmsep.data.pipelines`), training-time augmentation
(:mod:`~gmsep.data.augment`) and dynamic mixing
(:mod:`~gmsep.data.dynamic_mixing`). Knows nothing of models or training.
"""
