"""Evaluation: separation metrics, their averages and CSV, their pictures.

Shared by the Brain's test stage and ``gmsep evaluate``.
"""
