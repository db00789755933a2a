"""The recordings a command is given: files, folders, globs and lists.

``gmsep separate`` takes its inputs as people have them: audio files,
folders (searched recursively for audio files), glob patterns (``'talks/**/
*.flac'``, quoted so that the shell leaves them alone) and text files that
list one of those per line. :func:`find_inputs` resolves them into
recordings, each with the place of its outputs below ``--out``: the path
below the folder, the glob's fixed part or the list's folder, so that the
outputs mirror the input tree.

Example
-------
>>> folder = getfixture("tmp_path")
>>> (folder / "talks" / "day1").mkdir(parents=True)
>>> for name in ("talks/a.wav", "talks/day1/b.flac", "talks/notes.txt"):
...     _ = (folder / name).write_bytes(b"")
>>> [str(found.stem) for found in find_inputs([folder / "talks"])]
['a', 'day1/b']
"""

import glob
import itertools
import os
from pathlib import Path, PurePath
from typing import NamedTuple

from gmsep.data.audio import DataError

# What a folder or a glob contributes: the formats libsndfile reads.
AUDIO_SUFFIXES = (
    ".wav",
    ".flac",
    ".ogg",
    ".opus",
    ".mp3",
    ".aif",
    ".aiff",
    ".aifc",
    ".au",
    ".caf",
    ".w64",
    ".rf64",
)
# An input with one of these suffixes is a list of inputs, one per line.
LIST_SUFFIXES = (".txt", ".lst", ".list")


class Input(NamedTuple):
    """A recording and where its outputs go."""

    path: Path
    # below --out, without suffix: `<stem>_s1.wav`, ...
    stem: PurePath


def is_audio(path):
    """Whether a file name has an audio suffix (any case).

    Example
    -------
    >>> is_audio(Path("TALK.WAV")), is_audio(Path("notes.txt"))
    (True, False)
    """
    return path.suffix.lower() in AUDIO_SUFFIXES


def _is_hidden(path, base):
    """Whether a file below base, or a folder on the way, is hidden (a
    ``.name``: among them the temporaries of a write in progress)."""
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        parts = (path.name,)
    return any(part.startswith(".") for part in parts)


def _stem(path, base):
    """Where path's outputs go: its path below base (its name when it is
    not below base), without the suffix."""
    try:
        relative = path.relative_to(base)
    except ValueError:
        relative = PurePath(path.name)
    return relative.with_name(path.stem)


def _found(paths, base, exclude):
    """The audio files among paths, in order, not hidden, not below
    exclude (the output folder: its files are no recordings)."""
    excluded = exclude.resolve() if exclude is not None else None
    for path in sorted(paths):
        if not (path.is_file() and is_audio(path)) or _is_hidden(path, base):
            continue
        if excluded is not None and excluded in path.resolve().parents:
            continue
        yield Input(path, _stem(path, base))


def _expand(spec, exclude, list_file=None):
    """The recordings one argument (or one line of a list) names."""
    path = Path(spec)
    where = f"{list_file}: " if list_file is not None else ""
    if path.is_dir():
        found = list(_found(path.rglob("*"), path, exclude))
        if not found:
            raise DataError(
                f"{where}{spec}: no audio file ({', '.join(AUDIO_SUFFIXES)}) "
                "in this folder or below"
            )
        return found
    if path.suffix.lower() in LIST_SUFFIXES and list_file is None:
        return _read_list(path, exclude)
    if not path.exists() and glob.has_magic(os.fspath(spec)):
        fixed = itertools.takewhile(
            lambda part: not glob.has_magic(part), path.parts[:-1]
        )
        base = Path(*fixed)
        matches = (Path(p) for p in glob.iglob(os.fspath(spec), recursive=True))
        found = list(_found(matches, base, exclude))
        if not found:
            raise DataError(f"{where}{spec}: the pattern matches no audio file")
        return found
    if list_file is not None and not path.exists():
        raise DataError(f"{where}{spec}: file not found")
    # a file: checked with the others (gmsep.data.audio.check_recording)
    return [Input(path, PurePath(path.stem))]


def _read_list(list_path, exclude):
    """The recordings a list file names: one file, folder or glob per line,
    relative to the list's folder; empty lines and ``#`` comments skipped;
    every line that names nothing reported."""
    if not list_path.is_file():
        raise DataError(f"{list_path}: list file not found")
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(
            f"{list_path}: not a text file (a list of inputs, one per line, "
            "is read as UTF-8)"
        ) from err
    found, problems = [], []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line)
        path = path if path.is_absolute() else list_path.parent / path
        try:
            for item in _expand(path, exclude, f"{list_path}, line {number}"):
                # mirrored from the list's folder, as the line reads
                found.append(
                    item._replace(stem=_stem(item.path, list_path.parent))
                )
        except DataError as err:
            problems.append(str(err))
    if problems:
        raise DataError("\n".join(problems))
    if not found:
        raise DataError(f"{list_path}: lists no input")
    return found


def find_inputs(specs, exclude=None):
    """Resolves a command's input arguments into recordings.

    Arguments
    ---------
    specs : sequence of str or os.PathLike
        Audio files, folders (every audio file below them, hidden ones
        left out), glob patterns (``**`` for any depth) and list files
        (``.txt``, ``.lst``, ``.list``: one file, folder or glob per line,
        relative to the list's folder).
    exclude : str or os.PathLike, optional
        A folder whose files folders and globs do not contribute: the
        output folder, when it lies below an input folder.

    Returns
    -------
    list of Input
        In the order given (folders and globs sorted), each recording once.

    Raises
    ------
    DataError
        One line per argument (or list line) that names no recording: a
        folder without audio files, a glob that matches none, a list
        naming a file that does not exist. Files given by name are not
        checked here.
    """
    exclude = Path(exclude) if exclude is not None else None
    found, problems = {}, []
    for spec in specs:
        try:
            for item in _expand(spec, exclude):
                found.setdefault(item.path.resolve(), item)
        except DataError as err:
            problems.extend(str(err).splitlines())
    if problems:
        raise DataError("\n".join(problems))
    return list(found.values())
