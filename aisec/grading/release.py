"""Generate the student versions in ``labs/`` from the sources in ``solutions/``.

    python -m aisec.grading.release                    # every lab
    python -m aisec.grading.release lab00_minimisation # one lab
    python -m aisec.grading.release --into /tmp/x      # somewhere else (the sync test does this)

This is ``nbgrader generate_assignment --force --no-db`` with the course configuration; the
gradebook is not touched (grading registers the assignment itself).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from aisec.grading.common import course_root, lab_ids


def release(labs: list[str], into: Path | None = None) -> list[Path]:
    """Release ``labs`` into ``into`` (default ``labs/``); return the released folders."""
    root = course_root()
    target = Path(into).resolve() if into else root / "labs"
    released = []
    for lab in labs:
        if not (root / "solutions" / lab).is_dir():
            raise SystemExit(f"No lab {lab!r} in solutions/; labs are: {', '.join(lab_ids())}")
        dest = target / lab
        if dest.exists():
            shutil.rmtree(dest)  # files removed from the source must disappear from the release
        cmd = [
            sys.executable, "-m", "nbgrader", "generate_assignment", lab, "--force", "--no-db",
            f"--CourseDirectory.release_directory={target}", "--log-level=WARN",
        ]
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"nbgrader could not release {lab}:\n{proc.stdout}\n{proc.stderr}")
        for junk in dest.rglob(".ipynb_checkpoints"):
            shutil.rmtree(junk)
        released.append(dest)
    return released


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labs", nargs="*", help="lab ids (default: every lab in solutions/)")
    parser.add_argument("--into", type=Path, help="release folder (default: labs/)")
    args = parser.parse_args(argv)
    for dest in release(args.labs or lab_ids(), args.into):
        print(f"released {dest}")


if __name__ == "__main__":
    main()
