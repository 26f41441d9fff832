"""Lab 7: the served model. A JSON prediction API with API keys, served on loopback over HTTP or
HTTPS (optionally mutual TLS), and an on-path proxy that sits between a client and the server.

* :class:`ModelAPI` is the service logic without the network: it checks the API key, counts and logs
  every key's queries (what a monitor sees), enforces a query budget and shapes the output
  (``"probabilities"``, probabilities ``"rounded"`` to a few decimals, or ``"labels"`` only).
* :class:`PredictServer` serves a :class:`ModelAPI` at ``POST /predict`` (``{"inputs": [[64 floats], ...]}``,
  header ``X-API-Key``). :class:`OnPathProxy` listens on another loopback port and forwards to it:
  ``mode="intercept"`` terminates the client's connection itself (reading HTTP, or TLS with a forged
  certificate), records the API keys it sees and rewrites the predictions; ``mode="relay"`` only copies
  bytes both ways and keeps a transcript (a passive eavesdropper).

Everything binds 127.0.0.1 on an ephemeral port, runs in daemon threads with timeouts on every socket,
and stops by itself after ``deadline`` seconds or ``max_requests`` requests; leaving the ``with``
block stops it and joins its thread.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

API_KEY_HEADER = "X-API-Key"
MAX_BATCH = 256
SOCKET_TIMEOUT = 5.0
OUTPUTS = ("probabilities", "rounded", "labels")


class BudgetExceeded(RuntimeError):
    """The key has used up its query budget."""


class ModelAPI:
    """A classifier behind API keys. ``predict(key, x)`` returns ``{"labels": [...]}`` and, unless the
    output is ``"labels"``, ``"probabilities"`` (rounded to ``decimals`` when the output is ``"rounded"``)."""

    def __init__(self, model: Any, keys: tuple[str, ...] = ("key-analyst",), *, output: str = "probabilities",
                 decimals: int = 1, budget: int | None = None):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}")
        self.model, self.keys, self.output, self.decimals, self.budget = model, set(keys), output, decimals, budget
        self.log: dict[str, list[np.ndarray]] = defaultdict(list)  # every key's queries, in order
        self._lock = threading.Lock()

    def used(self, key: str) -> int:
        return sum(len(q) for q in self.log.get(key, []))

    def queries(self, key: str) -> np.ndarray:
        """All queries of ``key`` so far, shape (n, 64)."""
        parts = self.log.get(key, [])
        return np.concatenate(parts) if parts else np.zeros((0, 64), dtype=np.float32)

    def predict(self, key: str, x: Any) -> dict[str, list]:
        from aisec.models import predict_proba

        if key not in self.keys:
            raise PermissionError("unknown API key")
        batch = np.asarray(x, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != 64 or not 0 < len(batch) <= MAX_BATCH or not np.isfinite(batch).all():
            raise ValueError(f"inputs must be 1 to {MAX_BATCH} rows of 64 finite numbers")
        with self._lock:
            if self.budget is not None and self.used(key) + len(batch) > self.budget:
                raise BudgetExceeded("query budget exhausted for this key")
            self.log[key].append(batch.copy())
        probs = predict_proba(self.model, batch)
        out: dict[str, list] = {"labels": [int(c) for c in probs.argmax(axis=1)]}
        if self.output == "probabilities":
            out["probabilities"] = probs.astype(float).tolist()
        elif self.output == "rounded":
            out["probabilities"] = np.round(probs.astype(float), self.decimals).tolist()
        return out


# ----------------------------------------------------------------------------- threads with a deadline


class _Stoppable:
    """Runs ``self._serve_one()`` in a daemon thread until stopped, the deadline passes or
    ``max_requests`` connections were handled."""

    def __init__(self, deadline: float, max_requests: int):
        self.deadline, self.max_requests = deadline, max_requests
        self.handled = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def port(self) -> int:
        assert self._sock is not None, "not started: use it in a with block"
        return self._sock.getsockname()[1]

    def __enter__(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))  # loopback only, an ephemeral port
        self._sock.listen(16)
        self._sock.settimeout(0.05)  # accept() wakes up often enough to notice a stop or the deadline
        end = time.monotonic() + self.deadline
        self._thread = threading.Thread(target=self._loop, args=(end,), daemon=True)
        self._thread.start()
        return self

    def _loop(self, end: float) -> None:
        assert self._sock is not None
        while not self._stop.is_set() and time.monotonic() < end and self.handled < self.max_requests:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break  # the socket was closed
            conn.settimeout(SOCKET_TIMEOUT)
            self.handled += 1
            try:
                self._handle(conn)
            except OSError:
                pass  # a client that hangs up or fails the handshake ends its own connection only
            finally:
                conn.close()

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=SOCKET_TIMEOUT + 1)
        if self._sock is not None:
            self._sock.close()


def _read_http(stream: Any) -> tuple[str, dict[str, str], bytes]:
    """One HTTP/1.x message from a socket-like object: (start line, headers, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = stream.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed before the headers ended")
        data += chunk
        if len(data) > 65536:
            raise ConnectionError("headers too long")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length > 8_000_000:
        raise ConnectionError("body too long")
    while len(body) < length:
        chunk = stream.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed inside the body")
        body += chunk
    return lines[0], headers, body


def _response(status: int, payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
              502: "Bad Gateway"}[status]
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


class PredictServer(_Stoppable):
    """``POST /predict`` over HTTP, or HTTPS when given a server ``ssl_context`` (from
    :func:`aisec.lab07.tls.server_context`; with a client CA it is mutual TLS)."""

    def __init__(self, api: ModelAPI, ssl_context: Any = None, *, deadline: float = 20.0, max_requests: int = 200):
        super().__init__(deadline, max_requests)
        self.api, self.ssl_context = api, ssl_context
        self.refused_handshakes = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}/predict"

    def _handle(self, conn: socket.socket) -> None:
        import ssl

        stream: Any = conn
        if self.ssl_context is not None:
            try:
                stream = self.ssl_context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                self.refused_handshakes += 1  # e.g. no client certificate, or one the course CA did not sign
                return
        line, headers, body = _read_http(stream)
        if not line.startswith("POST /predict"):
            stream.sendall(_response(404, {"error": "not found"}))
            return
        try:
            payload = json.loads(body)
            result = self.api.predict(headers.get(API_KEY_HEADER.lower(), ""), payload["inputs"])
            stream.sendall(_response(200, result))
        except PermissionError:
            stream.sendall(_response(401, {"error": "unknown API key"}))
        except BudgetExceeded:
            stream.sendall(_response(429, {"error": "query budget exhausted"}))
        except (ValueError, KeyError, TypeError):
            stream.sendall(_response(400, {"error": "inputs must be 1 to 256 rows of 64 numbers"}))


def rewrite_predictions(payload: dict) -> dict:
    """The proxy's tampering: every label moved to the next class, probabilities rolled to match."""
    out = dict(payload)
    if "labels" in out:
        out["labels"] = [(int(c) + 1) % 10 for c in out["labels"]]
    if "probabilities" in out:
        out["probabilities"] = [list(np.roll(np.asarray(p, dtype=float), 1)) for p in out["probabilities"]]
    return out


class OnPathProxy(_Stoppable):
    """An attacker on the path to ``upstream`` (a :class:`PredictServer`).

    ``mode="intercept"``: for a plaintext client it reads the request, records the API key, forwards it
    and rewrites the predictions in the answer; for a TLS client it presents ``forged_cert``/``forged_key``
    (a certificate for the server's names from the attacker's own CA) and does the same if the client
    accepts it. It reaches a TLS upstream without verifying it and without a client certificate.
    ``mode="relay"``: copies bytes both ways unchanged and keeps them in ``transcript``.
    ``events`` says what happened to each connection."""

    def __init__(self, upstream: PredictServer, *, mode: str = "intercept", forged_cert: Path | None = None,
                 forged_key: Path | None = None, deadline: float = 20.0, max_requests: int = 200):
        super().__init__(deadline, max_requests)
        if mode not in ("intercept", "relay"):
            raise ValueError("mode is 'intercept' or 'relay'")
        self.upstream, self.mode = upstream, mode
        self.forged = (forged_cert, forged_key)
        self.intercepted_keys: list[str] = []
        self.rewritten = 0
        self.events: list[str] = []
        self.transcript = bytearray()

    def url(self, scheme: str) -> str:
        """The address a client is tricked into using (same path, the proxy's port)."""
        return f"{scheme}://127.0.0.1:{self.port}/predict"

    @property
    def leaked_keys(self) -> list[str]:
        """API keys the attacker learnt: intercepted, or readable in the relayed bytes."""
        found = re.findall(rb"(?i)x-api-key:\s*([^\r\n]+)", bytes(self.transcript))
        return self.intercepted_keys + [k.decode("latin-1").strip() for k in found]

    def _handle(self, conn: socket.socket) -> None:
        if self.mode == "relay":
            self._relay(conn)
        else:
            self._intercept(conn)

    def _relay(self, conn: socket.socket) -> None:
        import selectors

        up = socket.create_connection(("127.0.0.1", self.upstream.port), timeout=SOCKET_TIMEOUT)
        with up, selectors.DefaultSelector() as sel:
            sel.register(conn, selectors.EVENT_READ, up)
            sel.register(up, selectors.EVENT_READ, conn)
            end = time.monotonic() + SOCKET_TIMEOUT
            while time.monotonic() < end and not self._stop.is_set():
                for key, _ in sel.select(timeout=0.05):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        self.events.append("relayed")
                        return
                    self.transcript += data
                    key.data.sendall(data)
        self.events.append("relay timed out")

    def _intercept(self, conn: socket.socket) -> None:
        import http.client
        import ssl

        stream: Any = conn
        first = conn.recv(1, socket.MSG_PEEK)
        if first == b"\x16":  # a TLS handshake record: answer it with the forged certificate
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.forged[0]), str(self.forged[1]))
            try:
                stream = ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                self.events.append("client refused the forged certificate")
                return
            self.events.append("client accepted the forged certificate")
        else:
            self.events.append("plaintext client")
        line, headers, body = _read_http(stream)
        key = headers.get(API_KEY_HEADER.lower())
        if key is not None:
            self.intercepted_keys.append(key)
        if self.upstream.ssl_context is not None:
            insecure = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
            up: Any = http.client.HTTPSConnection("127.0.0.1", self.upstream.port, timeout=SOCKET_TIMEOUT,
                                                  context=insecure)
        else:
            up = http.client.HTTPConnection("127.0.0.1", self.upstream.port, timeout=SOCKET_TIMEOUT)
        try:
            up.request("POST", "/predict", body=body, headers={"Content-Type": "application/json",
                                                               API_KEY_HEADER: key or ""})
            reply = up.getresponse()
            status, data = reply.status, reply.read()
        except (ssl.SSLError, OSError):
            self.events.append("upstream refused the proxy")
            stream.sendall(_response(502, {"error": "bad gateway"}))
            return
        finally:
            up.close()
        if status == 200:
            payload = rewrite_predictions(json.loads(data))
            self.rewritten += 1
            stream.sendall(_response(200, payload))
        else:
            stream.sendall(_response(status, json.loads(data)))
