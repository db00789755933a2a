"""Makes torchaudio importable next to a CPU-only torch.

The torchaudio wheels on PyPI are CUDA builds: with a CPU torch, loading their
compiled extension raises ``OSError: Could not load this library``, and
``import speechbrain`` fails with it. torchaudio supports running without its
extension (pure Python), which covers everything gmsep uses (resampling,
filters, SpeechBrain's augmentations). Only when the import fails, this script
renames ``torchaudio/lib/*.so`` to ``*.so.disabled`` and says so; rename them
back to undo. Nothing is changed where the import works (e.g. on CUDA machines).
"""

import importlib.util
import pathlib
import subprocess
import sys


def torchaudio_import_error():
    """Returns the error text of ``import torchaudio`` in a fresh interpreter, or ''."""
    probe = subprocess.run(
        [sys.executable, "-c", "import torchaudio"],
        capture_output=True,
        text=True,
    )
    return "" if probe.returncode == 0 else probe.stderr.strip()


def main():
    """Disables torchaudio's extension if, and only if, it cannot be loaded."""
    error = torchaudio_import_error()
    if not error:
        return 0
    if "Could not load this library" not in error:
        print(f"fix_torchaudio: import torchaudio failed:\n{error}")
        return 1
    spec = importlib.util.find_spec("torchaudio")
    lib_dir = pathlib.Path(spec.submodule_search_locations[0]) / "lib"
    for library in sorted(lib_dir.glob("*.so")):
        library.rename(library.with_name(library.name + ".disabled"))
        print(f"fix_torchaudio: disabled {library.name} (needs CUDA libraries)")
    print(
        "fix_torchaudio: torchaudio now runs without its compiled extension "
        "(pure Python; forced_align and rnnt_loss are unavailable, gmsep uses neither)"
    )
    error = torchaudio_import_error()
    if error:
        print(f"fix_torchaudio: import torchaudio still fails:\n{error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
