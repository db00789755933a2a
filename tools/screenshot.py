"""A small PNG screenshot of a page, by headless Chromium.

    python tools/screenshot.py results/demo/evaluation/report/report.html docs/report.png

Chromium draws the top of the page at the given window size; the picture is
then reduced to a palette of 128 colours (a few hundred kB become about 100).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="the HTML file")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--size", default="1000,1900", help="window W,H in px")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("screenshot: chromium is not installed (see tools/setup.sh)")
    if not args.page.is_file():
        sys.exit(f"screenshot: {args.page}: not found")
    with tempfile.TemporaryDirectory() as folder:
        shot = Path(folder) / "shot.png"
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={folder}/profile",
                f"--window-size={args.size}",
                f"--screenshot={shot}",
                args.page.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        image = Image.open(shot).convert("RGB").quantize(128)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        image.save(args.out, optimize=True)
    print(f"Wrote {args.out} ({args.out.stat().st_size // 1024} kB)")


if __name__ == "__main__":
    main()
