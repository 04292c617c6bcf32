"""Copy this package into a directory, for images that do not have it.

    python -m msjob_runtime.install DIR        (or: python .../msjob_runtime/install.py DIR)

makes ``DIR/msjob_runtime/`` with the package's modules, so that ``PYTHONPATH=DIR`` imports it
on any Python 3.8+.  Meant for an init container of the operator's image writing into an
emptyDir that the training container mounts (the operator's builders/runtime.py).

The copy is made in a temporary directory beside the target and renamed into place, so a
container restarted half way never leaves half a package; files are made 0644 and directories
0755, readable by whatever user the training container runs as.  Imports nothing of its own
package, so it also runs as a plain script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

SOURCE = Path(__file__).resolve().parent
PACKAGE = SOURCE.name


def package_files(source: Path = SOURCE) -> List[Path]:
    """The package's modules (it is flat: no subpackages, no data files)."""
    return sorted(p for p in source.glob("*.py") if p.is_file())


def install(destination: str, source: Path = SOURCE) -> Path:
    """Copy the package in ``source`` to ``destination/<package>``, replacing an older copy; the new path."""
    dest = Path(destination)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / source.name
    fresh = Path(tempfile.mkdtemp(prefix=f".{source.name}-new-", dir=str(dest)))
    try:
        for f in package_files(source):
            shutil.copyfile(str(f), str(fresh / f.name))
            os.chmod(str(fresh / f.name), 0o644)
        os.chmod(str(fresh), 0o755)
        old = None
        if target.exists() or target.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{source.name}-old-", dir=str(dest)))
            os.rename(str(target), str(old / source.name))
        os.rename(str(fresh), str(target))
    except BaseException:
        shutil.rmtree(str(fresh), ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(str(old), ignore_errors=True)
    return target


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PACKAGE}.install",
                                     description=f"Copy the {PACKAGE} package into DIR (then PYTHONPATH=DIR).")
    parser.add_argument("directory", metavar="DIR")
    args = parser.parse_args(argv)
    try:
        target = install(args.directory)
        message, code = f"{PACKAGE} ({len(package_files(target))} modules) installed in {target}", 0
    except OSError as e:
        message, code = f"cannot install {PACKAGE} into {args.directory}: {e}", 1
    print(f"msjob: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
