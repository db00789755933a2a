"""Output locations: checked before any work, published only when complete.

Every command that writes (``gmsep separate``, ``evaluate``, ``export``,
``train.py``) checks its output location before the model loads or the data
are read, and writes each file under a temporary name next to its target,
renamed into place when complete (``os.replace``, atomic within a file
system). A run that fails or is killed leaves the earlier file or the new
one, never a half-written one; ``--overwrite`` replaces only the files a
command names itself, never one of its inputs.

Example
-------
>>> folder = getfixture("tmp_path")
>>> with staged_files([folder / "a.txt", folder / "b.txt"]) as (a, b):
...     _ = a.write_text("a"), b.write_text("b")
>>> sorted(path.name for path in folder.iterdir())
['a.txt', 'b.txt']
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

# What a file written here may be read by: as a plain open() would create it.
_FILE_MODE = 0o666


class OutputError(ValueError):
    """An output location cannot be used; the message names it.

    Example
    -------
    >>> isinstance(OutputError("out: exists and is not a folder"), ValueError)
    True
    """


def check_output_folder(folder, setting="--out"):
    """Checks, without creating anything, that a folder can receive outputs.

    Arguments
    ---------
    folder : str or os.PathLike
        The output folder; it need not exist yet.
    setting : str
        The option that names it, for the message.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OutputError
        When folder is a file, lies under a file, or neither it nor the
        nearest existing folder above it may be written to.

    Example
    -------
    >>> path = getfixture("tmp_path") / "notes.txt"
    >>> _ = path.write_text("mine")
    >>> check_output_folder(path / "out")
    Traceback (most recent call last):
    ...
    gmsep.data.outputs.OutputError: ...notes.txt/out: --out lies under ...notes.txt, which is a file
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: {setting} exists and is not a folder")
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(
            f"{folder}: {setting} lies under {existing}, which is a file"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            f"{folder}: {setting} is not writable (no write permission on "
            f"{existing})"
        )
    return folder


def refuse_inputs(outputs, inputs, setting="--out"):
    """Refuses outputs that would replace one of the command's inputs.

    Whatever ``--overwrite`` says: a command must never destroy what it
    reads, nor read what it has just written.

    Arguments
    ---------
    outputs : iterable of pathlib.Path
        The files the command will write.
    inputs : iterable of str or os.PathLike
        The files it reads.
    setting : str
        The option that places the outputs, for the message.

    Raises
    ------
    OutputError
        Naming the output and the input it is.

    Example
    -------
    >>> path = getfixture("tmp_path") / "a_s1.wav"
    >>> _ = path.write_bytes(b"mine")
    >>> refuse_inputs([path], [str(path)])
    Traceback (most recent call last):
    ...
    gmsep.data.outputs.OutputError: ...a_s1.wav: would replace an input of this command; choose another --out
    """
    # resolved once: links and ".." lead to the same place
    inputs = {Path(path).resolve() for path in inputs}
    for output in outputs:
        if Path(output).resolve() in inputs:
            raise OutputError(
                f"{output}: would replace an input of this command; choose "
                f"another {setting}"
            )


def is_folder_or_above(folder, path):
    """Whether folder is path or one of the folders above it.

    Example
    -------
    >>> is_folder_or_above("results", "results/demo/1234"), is_folder_or_above("results/demo", "results")
    (True, False)
    """
    folder, path = Path(folder).resolve(), Path(path).resolve()
    return folder == path or folder in path.parents


def _temporary_beside(target):
    """A new empty file next to target, with its suffix (libsndfile and
    matplotlib choose the format from it)."""
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix
    )
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, _FILE_MODE & ~umask)  # mkstemp's 0600 hides it from others
    return Path(name)


@contextlib.contextmanager
def staged_files(targets):
    """Yields one temporary path per target, next to it; when the block
    completes they replace the targets, when it fails they are removed.

    Arguments
    ---------
    targets : sequence of str or os.PathLike
        The files to write; their folders must exist.

    Yields
    ------
    list of pathlib.Path
        Where to write each target's content.
    """
    targets = [Path(target) for target in targets]
    temporaries = []
    try:
        for target in targets:
            temporaries.append(_temporary_beside(target))
        yield temporaries
        for temporary, target in zip(temporaries, targets, strict=True):
            os.replace(temporary, target)
    finally:
        for temporary in temporaries:
            if temporary.exists():
                temporary.unlink()


def write_text(path, text):
    """Writes a text file atomically (UTF-8).

    Example
    -------
    >>> path = getfixture("tmp_path") / "summary.json"
    >>> write_text(path, "{}\\n")
    >>> path.read_text()
    '{}\\n'
    """
    with staged_files([path]) as (temporary,):
        temporary.write_text(text, encoding="utf-8")


def check_replaceable_folder(folder, is_own, overwrite, inputs=()):
    """Checks that a folder a command writes as a whole may be written.

    Arguments
    ---------
    folder : pathlib.Path
        The folder (e.g. a report); it need not exist.
    is_own : callable
        Takes a file's path relative to folder; whether the command writes
        such a file.
    overwrite : bool
        ``--overwrite``: an existing folder holding only such files is
        replaced.
    inputs : iterable of str or os.PathLike
        The command's inputs: none may lie in the folder.

    Raises
    ------
    OutputError
        When folder exists without overwrite, holds a file the command
        does not write, is not a folder, or holds an input.

    Example
    -------
    >>> folder = getfixture("tmp_path") / "report"
    >>> folder.mkdir()
    >>> _ = (folder / "notes.txt").write_text("mine")
    >>> check_replaceable_folder(folder, lambda p: p.suffix == ".html", True)
    Traceback (most recent call last):
    ...
    gmsep.data.outputs.OutputError: ...report: holds notes.txt, which this command does not write; move it or choose another --out
    """
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder")
    if not overwrite:
        raise OutputError(f"{folder}: exists; use --overwrite to replace")
    for path in inputs:
        if is_folder_or_above(folder, path):
            raise OutputError(
                f"{path}: an input of this command lies in {folder}, which "
                "it would replace; choose another --out"
            )
    for path in sorted(folder.rglob("*")):
        if path.is_dir():
            continue
        relative = path.relative_to(folder)
        if not is_own(relative):
            raise OutputError(
                f"{folder}: holds {relative}, which this command does not "
                "write; move it or choose another --out"
            )


@contextlib.contextmanager
def staged_folder(target):
    """Yields a new empty folder next to target; when the block completes
    it replaces target (an earlier one is removed), when it fails it is
    removed.

    Example
    -------
    >>> target = getfixture("tmp_path") / "report"
    >>> with staged_folder(target) as folder:
    ...     _ = (folder / "a.html").write_text("new")
    >>> [path.name for path in target.iterdir()]
    ['a.html']
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(
        tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.")
    )
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o777 & ~umask)  # mkdtemp's 0700 hides it
    try:
        yield temporary
        if target.exists():
            # a folder cannot be renamed over a non-empty one: the earlier
            # one moves aside first, then goes
            old = Path(
                tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.")
            )
            os.replace(target, old / target.name)
            os.replace(temporary, target)
            shutil.rmtree(old)
        else:
            os.replace(temporary, target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)
