"""The install's choice of index for torch (tools/torch_index.py): the CPU index on Linux when it answers,
the configured index (with a note) when it does not, nothing extra elsewhere; and the probe's verdicts on
real loopback servers: one that answers, a closed port, one that accepts and never answers."""

from __future__ import annotations

import http.server
import importlib.util
import socket
import threading
import time
from collections.abc import Iterator

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
