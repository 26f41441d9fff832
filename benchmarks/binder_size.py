"""Installed size of the Binder environment, measured on the installed course environment.

    .venv/bin/python benchmarks/binder_size.py [--json artifacts/binder_size.json] [--top 15]

Binder installs environment.yml: Python 3.11 and pip from conda-forge, then the pip requirements (CPU-only torch).
This script takes those pip requirements, follows their dependencies through the packages installed in the running
interpreter (``importlib.metadata``; run it with the course's ``.venv``), and adds up the size on disk of every
file each distribution installed (its RECORD). Test-only packages (pytest, playwright, ...) are not in
environment.yml and are not counted. Python itself and conda's base (~0.3-0.5 GB in repo2docker images) are not in
this figure either; the JSON says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pip_requirements(env_file: Path) -> list[Requirement]:
    """The requirements of environment.yml's ``pip:`` section (options such as --extra-index-url left out)."""
    data = yaml.safe_load(env_file.read_text())
    out: list[Requirement] = []
    for dep in data.get("dependencies", []):
        if isinstance(dep, dict) and "pip" in dep:
            out.extend(Requirement(str(r)) for r in dep["pip"] if not str(r).strip().startswith("-"))
    return out


def installed() -> dict[str, metadata.Distribution]:
    dists: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            dists.setdefault(canonicalize_name(name), dist)
    return dists


def closure(roots: list[Requirement], dists: dict[str, metadata.Distribution]) -> tuple[set[str], set[str]]:
    """Installed distributions needed by ``roots`` (extras' dependencies left out), and those missing."""
    seen: set[str] = set()
    missing: set[str] = set()
    todo = [canonicalize_name(r.name) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name in missing:
            continue
        dist = dists.get(name)
        if dist is None:
            missing.add(name)
            continue
        seen.add(name)
        for spec in dist.requires or []:
            try:
                req = Requirement(spec)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(canonicalize_name(req.name))
    return seen, missing


def dist_size(dist: metadata.Distribution) -> int:
    total = 0
    for file in dist.files or []:
        path = Path(str(dist.locate_file(file)))
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def measure(env_file: Path) -> dict[str, object]:
    dists = installed()
    names, missing = closure(pip_requirements(env_file), dists)
    sizes = {dists[n].metadata["Name"]: dist_size(dists[n]) for n in names}
    torch = dists.get("torch")
    return {
        "environment": str(env_file.relative_to(ROOT)),
        "python": sys.version.split()[0],
        "torch": torch.version if torch else None,
        "distributions": len(sizes),
        "total_bytes": sum(sizes.values()),
        "by_distribution": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "missing": sorted(missing),
        "not_counted": "Python itself and conda's base environment (repo2docker adds them to the image)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", type=Path, default=ROOT / "environment.yml")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    result = measure(args.env)
    mib = 1024 * 1024
    print(f"Binder environment (pip part of {result['environment']}), torch {result['torch']}:")
    print(f"  {result['distributions']} distributions, {result['total_bytes'] / mib:,.0f} MiB installed")
    for name, size in list(result["by_distribution"].items())[: args.top]:  # type: ignore[union-attr]
        print(f"  {size / mib:8.1f} MiB  {name}")
    if result["missing"]:
        print(f"  not installed here, so not counted: {', '.join(result['missing'])}")  # type: ignore[arg-type]
    print(f"  not counted: {result['not_counted']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
