"""The install's choice of index for torch (tools/torch_index.py): the CPU index on Linux when it answers,
the configured index (with a note) when it does not, nothing extra elsewhere; and the probe's verdicts on
real loopback servers: one that answers, a closed port, one that accepts and never answers."""

from __future__ import annotations

import http.server
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("torch_index", ROOT / "tools" / "torch_index.py")
assert spec is not None and spec.loader is not None
torch_index = importlib.util.module_from_spec(spec)
spec.loader.exec_module(torch_index)


def test_linux_with_the_cpu_index_reachable_adds_it() -> None:
    asked: list[str] = []
    args, reason = torch_index.index_args("Linux", probe=lambda url: asked.append(url) or True)
    assert args == ["--extra-index-url", torch_index.CPU_INDEX]
    assert asked == [f"{torch_index.CPU_INDEX}/torch/"] and "CPU build" in reason


def test_linux_without_the_cpu_index_falls_back_and_says_so() -> None:
    args, reason = torch_index.index_args("Linux", probe=lambda url: False)
    assert args == []
    assert reason.startswith("NOTE") and "configured index" in reason


@pytest.mark.parametrize("system", ["Darwin", "Windows"])
def test_other_systems_need_no_probe(system: str) -> None:
    def probe(url: str) -> bool:
        raise AssertionError("no probe off Linux")

    assert torch_index.index_args(system, probe=probe)[0] == []


@pytest.fixture
def answering_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/torch/"
    finally:
        server.shutdown()
        server.server_close()


def test_probe_says_yes_to_a_server_that_answers_even_with_404(answering_server: str) -> None:
    assert torch_index.reachable(answering_server, timeout=5)


def test_probe_says_no_at_once_to_a_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        start = time.monotonic()
        assert not torch_index.reachable(f"http://127.0.0.1:{port}/torch/", timeout=5)
    assert time.monotonic() - start < 2


def test_probe_gives_up_on_a_silent_server_within_its_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)  # accepts the connection, never answers: the probe must not hang
        start = time.monotonic()
        assert not torch_index.reachable(f"http://127.0.0.1:{sock.getsockname()[1]}/torch/", timeout=0.5)
    assert time.monotonic() - start < 3


def test_probe_prints_nothing_to_pip_when_nothing_is_to_be_added(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_index.platform, "system", lambda: "Darwin")
    assert torch_index.main() == 0
    assert capsys.readouterr().out == ""  # an empty line would reach pip as an empty argument


def _fake_wheel(index: Path, version: str) -> None:
    """A minimal, installable-looking torch wheel in a PEP 503 'simple' index folder."""
    name = f"torch-{version}-py3-none-any.whl"
    folder = index / "torch"
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"torch-{version}.dist-info"
    with zipfile.ZipFile(folder / name, "w") as wheel:
        wheel.writestr(f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        wheel.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist_info}/RECORD", "")
    (folder / "index.html").write_text(f'<html><body><a href="{name}">{name}</a></body></html>')


def test_pip_prefers_the_cpu_index_build_for_the_pin(tmp_path: Path) -> None:
    """What a user with internet gets: PyPI serves torch==X (the CUDA build), the CPU index torch==X+cpu;
    with the CPU index added as an extra index, pip resolves the pin ``torch==X`` to ``X+cpu`` (a local version
    sorts above its public one). Two local indexes stand in for the two servers; pip's own config is ignored."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pin = next(d for d in pyproject["project"]["dependencies"] if d.startswith("torch=="))
    version = pin.split("==")[1]
    pypi, cpu = tmp_path / "pypi", tmp_path / "cpu"
    _fake_wheel(pypi, version)
    _fake_wheel(cpu, f"{version}+cpu")
    report = tmp_path / "report.json"
    args, _ = torch_index.index_args("Linux", probe=lambda url: True)
    args = [a.replace(torch_index.CPU_INDEX, cpu.as_uri()) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "install", "--dry-run", "--ignore-installed", "--no-deps",
         "--no-cache-dir", "--quiet", "--report", str(report), "--index-url", pypi.as_uri(), *args, pin],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    chosen = [item["metadata"]["version"] for item in json.loads(report.read_text())["install"]]
    assert chosen == [f"{version}+cpu"], chosen
