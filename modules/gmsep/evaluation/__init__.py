"""Evaluation: separation metrics and their pictures.

Shared by the Brain's test stage and ``gmsep evaluate``.
"""
