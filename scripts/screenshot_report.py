"""Render an HTML report in headless Chromium and save a PNG screenshot.

Used to check the report's layout by eye; nothing is fetched from the network.

Example:
    python scripts/screenshot_report.py runs/pets/report.html /tmp/report.png
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
TIMEOUT_SECONDS = 120


def find_chromium() -> str:
    """The Chromium executable, or SystemExit with how to install it."""
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise SystemExit(
        "chromium not found (looked for "
        + ", ".join(repr(c) for c in CHROMIUM_CANDIDATES)
        + "); install it with `apt-get update && apt-get install -y chromium`"
    )


def take_screenshot(
    report: Path, output: Path, *, width: int = 1280, height: int = 4000
) -> Path:
    """Render ``report`` at ``width`` x ``height`` CSS pixels into the PNG ``output``.

    Example:
        >>> take_screenshot(Path("report.html"), Path("/tmp/r.png"))  # doctest: +SKIP
        PosixPath('/tmp/r.png')
    """
    report = report.resolve()
    output = output.resolve()
    if not report.is_file():
        raise SystemExit(f"report {str(report)!r} not found")
    output.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="lazyvision-chromium-") as profile:
        command = [
            find_chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={output}",
            f"--window-size={width},{height}",
            report.as_uri(),
        ]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    if result.returncode != 0 or not output.is_file():
        raise SystemExit(
            f"chromium exited with {result.returncode} and wrote no "
            f"{str(output)!r}:\n{result.stderr[-2000:]}"
        )
    return output


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the HTML report")
    parser.add_argument("output", type=Path, help="where to write the PNG")
    parser.add_argument("--width", type=int, default=1280, help="window width (px)")
    parser.add_argument("--height", type=int, default=4000, help="window height (px)")
    args = parser.parse_args(argv)
    path = take_screenshot(
        args.report, args.output, width=args.width, height=args.height
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
