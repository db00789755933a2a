"""Per-utterance results -> averages -> a CSV: the end of every evaluation.

The Brain's test stage (``test_results.csv``) and ``gmsep evaluate``
(``metrics.csv``) both turn one row of metrics per utterance into the set's
averages and write the rows to a CSV. That happens here, once. The CSV is
written to a temporary file next to it and renamed over it (``os.replace``,
atomic within a file system), so a run killed while writing leaves the
previous file or the new one, never a truncated one that ``gmsep export``
would read its averages from.

Authors
 * gmsep contributors 2026
"""

import csv
import math
import os
import tempfile

AVERAGE_ID = "avg"


def average_results(rows, names, defined_only=()):
    """The mean of every metric over the utterances.

    Arguments
    ---------
    rows : list of dict
        One per utterance, holding at least ``names``.
    names : sequence of str
        The metrics to average.
    defined_only : sequence of str
        Metrics averaged over the utterances where they are finite (NaN
        marks an undefined value); the others over all.

    Returns
    -------
    dict
        ``name -> mean`` in the order of ``names``; NaN for an empty set.

    Example
    -------
    >>> rows = [{"sdr": 1.0, "stoi": 0.5}, {"sdr": 2.0, "stoi": math.nan}]
    >>> average_results(rows, ["sdr", "stoi"], defined_only=["stoi"])
    {'sdr': 1.5, 'stoi': 0.5}
    """
    averages = {}
    for name in names:
        values = [row[name] for row in rows]
        if name in defined_only:
            values = [value for value in values if math.isfinite(value)]
        averages[name] = sum(values) / len(values) if values else math.nan
    return averages


def write_results(path, rows, id_column, names, averages=None):
    """Writes one CSV row per utterance (and optionally the averages), atomically.

    Arguments
    ---------
    path : str or pathlib.Path
        The CSV; replaced if it exists.
    rows : list of dict
        One per utterance: ``id_column`` and ``names``.
    id_column : str
        The name of the utterance ID column (first column).
    names : sequence of str
        The metric columns, in order.
    averages : dict, optional
        If given, written as a last row whose ID is ``avg``.

    Example
    -------
    >>> path = getfixture("tmp_path") / "results.csv"
    >>> rows = [{"ID": "a", "sdr": 1.0}, {"ID": "b", "sdr": 2.0}]
    >>> write_results(path, rows, "ID", ["sdr"], average_results(rows, ["sdr"]))
    >>> print(path.read_text().replace("\\r", ""), end="")
    ID,sdr
    a,1.0
    b,2.0
    avg,1.5
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fout:
            writer = csv.DictWriter(fout, fieldnames=[id_column, *names])
            writer.writeheader()
            writer.writerows(rows)
            if averages is not None:
                writer.writerow({id_column: AVERAGE_ID, **averages})
            fout.flush()
            os.fsync(fout.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from others
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
