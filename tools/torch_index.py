"""Which package index the course's torch comes from: PyTorch's CPU wheel index on Linux, when reachable.

On Linux, PyPI's torch wheel is the CUDA build and pulls several GB of ``nvidia-*`` packages; PyTorch's
CPU index serves ``torch==X+cpu``, which the pin ``torch==X`` also matches and pip prefers (a local
version sorts above its public one). macOS and Windows wheels on PyPI are CPU-only already.

Where the CPU index cannot be reached (an offline mirror, a firewall), the install must not hang: a
probe with a timeout of a few seconds decides, and the install falls back to the configured index,
saying so. ``course.sh`` runs this file before the course's package is installed, so it imports only
the standard library.

    python tools/torch_index.py     # prints pip's extra arguments, one per line; the reason on stderr
"""

from __future__ import annotations

import platform
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_SECONDS = 5.0


def reachable(url: str, timeout: float = PROBE_SECONDS) -> bool:
    """True when ``url`` answers at all within ``timeout`` seconds (DNS, connection and TLS included)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # the server answered: the index is there, whatever it thinks of HEAD
    except (urllib.error.URLError, OSError, ValueError):
        return False


def index_args(system: str, probe: Callable[[str], bool] = reachable) -> tuple[list[str], str]:
    """(pip's extra arguments, a sentence saying which torch build comes from where)."""
    if system != "Linux":
        return [], f"{system}: PyPI's torch wheels are CPU-only; no extra index needed."
    if probe(f"{CPU_INDEX}/torch/"):
        return ["--extra-index-url", CPU_INDEX], f"torch: the CPU build from PyTorch's CPU index ({CPU_INDEX})."
    return [], (f"NOTE: PyTorch's CPU index ({CPU_INDEX}) could not be reached (probe time-out: {PROBE_SECONDS:.0f} s); "
                "installing torch from pip's configured index instead. If that index only has the CUDA build, "
                "pip downloads it and its nvidia-* packages (several GB); the course still runs on the CPU.")


def main() -> int:
    args, reason = index_args(platform.system())
    print(reason, file=sys.stderr)
    for arg in args:  # nothing at all when there is nothing to add (an empty line would be an argument)
        print(arg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
