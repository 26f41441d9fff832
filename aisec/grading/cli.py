"""``aisec-grade``: the course's grading commands.

    aisec-grade self LAB [--notebook PATH] [--json]        grade your own work, with hints (through the class's
                                                           grading service when AISEC_GRADING_SERVICE_URL is set)
    aisec-grade class LAB [--workers N] [--scheduler ADDR] [--allow-unsandboxed] [--force]
    aisec-grade feedback LAB                               nbgrader generate_feedback
    aisec-grade export [--to grades.csv]                   nbgrader export
    aisec-grade check-sandbox                              can this host sandbox submissions?
    aisec-grade publish DEST [--force]                     write a student-only copy, proved clean by a leak scan
    aisec-grade service                                    the grading service (JupyterHub starts it: see
                                                           aisec.grading.service)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from aisec.grading.common import course_root, workspace


def _nbgrader(args: list[str]) -> int:
    """Run an nbgrader command with the course configuration (from the course root)."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return subprocess.call([sys.executable, "-m", "nbgrader", *args], cwd=course_root(), env=env)


def _publish(dest: Path, force: bool) -> int:
    """aisec-grade publish: 0 when the copy is written and clean, 1 (with the reasons) otherwise."""
    try:
        from aisec.grading.publish import PublishError, publish, render
    except ModuleNotFoundError as exc:  # a student copy leaves the publisher out
        if exc.name != "aisec.grading.publish":
            raise
        print("publish is the instructor's command: run it in the full course repository.", file=sys.stderr)
        return 2
    try:
        print(render(publish(dest, force=force)))
    except PublishError as exc:
        print(f"publish failed: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aisec-grade", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_self = sub.add_parser("self", help="grade your own copy of a lab (score, per-question feedback, hints)")
    p_self.add_argument("lab")
    p_self.add_argument("--notebook", help="the notebook to grade (default: labs/LAB/LAB.ipynb)")
    p_self.add_argument("--json", action="store_true", help="print the result as JSON")
    p_class = sub.add_parser("class", help="grade every submission in <workspace>/submitted/*/LAB in parallel")
    p_class.add_argument("lab")
    p_class.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="local Dask workers (default: cores)")
    p_class.add_argument("--scheduler", help="address of an existing Dask scheduler (tcp://host:8786)")
    p_class.add_argument("--allow-unsandboxed", action="store_true",
                         help="grade even if the sandbox cannot run here (students' code then runs with your rights)")
    p_class.add_argument("--force", action="store_true", help="regrade submissions already graded and unchanged")
    p_class.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_fb = sub.add_parser("feedback", help="write feedback for every graded submission (nbgrader generate_feedback)")
    p_fb.add_argument("lab")
    p_export = sub.add_parser("export", help="export the gradebook (nbgrader export)")
    p_export.add_argument("--to", default="grades.csv", help="CSV file to write (default: grades.csv)")
    sub.add_parser("check-sandbox", help="say whether submissions can be sandboxed on this host")
    p_pub = sub.add_parser("publish", help="write a student-only copy of the course to DEST, and scan it for leaks")
    p_pub.add_argument("dest", type=Path, help="a new folder outside the course (e.g. ../aisec-students)")
    p_pub.add_argument("--force", action="store_true", help="replace an earlier student copy at DEST (its .git is kept)")
    sub.add_parser("service", help="run the grading service for a class on JupyterHub (the hub starts it)")
    args = parser.parse_args(argv)

    if args.command == "self":
        from aisec.grading.selfgrade import GradingServiceError, render, self_grade

        try:
            result = self_grade(args.lab, args.notebook)
        except GradingServiceError as exc:
            print(f"grading failed: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(result, indent=1) if args.json else render(result))
        return 0 if "error" not in result else 1
    if args.command == "class":
        from aisec.grading.pipeline import Grader, SandboxUnavailable

        try:
            summary = Grader(args.lab, allow_unsandboxed=args.allow_unsandboxed).grade_class(
                workers=args.workers, scheduler=args.scheduler, force=args.force, progress=not args.no_progress)
        except SandboxUnavailable as exc:
            print(f"\n{'!' * 78}\n{exc}\n{'!' * 78}", file=sys.stderr)
            return 2
        print(summary.render())
        print(f"gradebook: {Grader(args.lab).cfg.CourseDirectory.db_url}; summary: "
              f"{workspace() / 'grading' / args.lab / 'summary.json'}")
        return 0 if not summary.failed else 1
    if args.command == "feedback":
        return _nbgrader(["generate_feedback", args.lab, "--force"])
    if args.command == "export":
        return _nbgrader(["export", f"--to={Path(args.to).resolve()}"])
    if args.command == "publish":
        return _publish(args.dest, args.force)
    if args.command == "service":
        from aisec.grading.service import main as serve

        serve()
        return 0
    if args.command == "check-sandbox":
        from aisec.grading.sandbox import sandbox_status

        usable, why = sandbox_status()
        print(("OK: " if usable else "NO SANDBOX: ") + why)
        return 0 if usable else 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
