"""Scenario tests of lab 7, part B (aisec.lab07 serving, tls, extraction, watermark): the servers and the
proxy behave as the lab says and stop by themselves, the PKI verifies as it should, the API enforces its
keys, budget and output shapes, and the streams and suspects carry a truth that a wrong detector gets wrong."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from aisec.lab07 import extraction, tls, watermark
from aisec.lab07.serving import BudgetExceeded, ModelAPI, OnPathProxy, PredictServer

KEY = "key-test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tls.PKI:
    return tls.course_pki(3, tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def api() -> ModelAPI:
    return ModelAPI(extraction.victim(0), keys=(KEY,))


def _x() -> np.ndarray:
    return extraction.fidelity_set(0)[:4]


def _post(port: int, context: ssl.SSLContext | None = None, key: str = KEY) -> dict:
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context) if context
            else http.client.HTTPConnection("127.0.0.1", port, timeout=5))
    try:
        conn.request("POST", "/predict", body=json.dumps({"inputs": _x().tolist()}),
                     headers={"X-API-Key": key, "Content-Type": "application/json"})
        reply = conn.getresponse()
        return {"status": reply.status, **json.loads(reply.read())}
    finally:
        conn.close()


def _client(pki: tls.PKI, ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def test_pki_is_seeded_and_verifies_only_its_own_certificates(pki: tls.PKI, tmp_path: Path) -> None:
    from cryptography import x509

    again = tls.course_pki(3, tmp_path / "again")
    other = tls.course_pki(4, tmp_path / "other")
    key = lambda p: x509.load_pem_x509_certificate(p.read_bytes()).public_key().public_numbers()  # noqa: E731
    assert key(again.server_cert) == key(pki.server_cert)
    assert key(other.server_cert) != key(pki.server_cert)
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    with pytest.raises(Exception):
        x509.load_pem_x509_certificate(pki.forged_server_cert.read_bytes()).verify_directly_issued_by(ca)


def test_model_api_enforces_keys_budget_and_output(api: ModelAPI) -> None:
    with pytest.raises(PermissionError):
        api.predict("nope", _x())
    with pytest.raises(ValueError):
        api.predict(KEY, np.zeros((2, 63)))
    full = api.predict(KEY, _x())
    assert np.allclose(np.sum(full["probabilities"], axis=1), 1.0, atol=1e-5)
    assert full["labels"] == list(np.argmax(full["probabilities"], axis=1))
    labels_only = ModelAPI(api.model, keys=(KEY,), output="labels", budget=6)
    out = labels_only.predict(KEY, _x())
    assert set(out) == {"labels"} and out["labels"] == full["labels"]
    with pytest.raises(BudgetExceeded):
        labels_only.predict(KEY, _x())
    assert labels_only.used(KEY) == 4 and labels_only.queries(KEY).shape == (4, 64)
    rounded = ModelAPI(api.model, keys=(KEY,), output="rounded", decimals=1).predict(KEY, _x())
    assert all(round(p, 1) == p for row in rounded["probabilities"] for p in row)


def test_plain_http_proxy_reads_the_key_and_rewrites_and_everything_stops(api: ModelAPI) -> None:
    before = threading.active_count()
    with PredictServer(api, deadline=10) as server, OnPathProxy(server, deadline=10) as proxy:
        direct = _post(server.port)
        tampered = _post(proxy.port)
        assert server.running and proxy.running
    assert not server.running and not proxy.running
    assert threading.active_count() == before
    assert tampered["labels"] == [(c + 1) % 10 for c in direct["labels"]]
    assert proxy.leaked_keys == [KEY] and proxy.rewritten == 1
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_servers_stop_by_themselves(api: ModelAPI) -> None:
    with PredictServer(api, deadline=10, max_requests=1) as server:
        _post(server.port)
        server._thread.join(timeout=2)  # type: ignore[union-attr]
        assert not server.running
    start = time.monotonic()
    with PredictServer(api, deadline=0.3) as server:
        server._thread.join(timeout=2)  # type: ignore[union-attr]
        assert not server.running and time.monotonic() - start < 2


def test_tls_defeats_the_proxy_and_mutual_tls_refuses_strangers(api: ModelAPI, pki: tls.PKI) -> None:
    mtls = tls.server_context(pki.server_cert, pki.server_key, client_ca=pki.ca_cert)
    good = _client(pki, pki.ca_cert, pki.client_cert, pki.client_key)
    with PredictServer(api, mtls, deadline=10) as server:
        assert _post(server.port, good)["status"] == 200
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _post(server.port, _client(pki, pki.ca_cert))  # no client certificate
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _post(server.port, _client(pki, pki.ca_cert, pki.rogue_client_cert, pki.rogue_client_key))
        end = time.monotonic() + 3  # the server counts a refusal after the client has seen it
        while server.refused_handshakes < 2 and time.monotonic() < end:
            time.sleep(0.01)
        assert server.refused_handshakes == 2
        with OnPathProxy(server, forged_cert=pki.forged_server_cert, forged_key=pki.forged_server_key) as proxy:
            with pytest.raises(ssl.SSLCertVerificationError):
                _post(proxy.port, good)
        assert proxy.leaked_keys == [] and proxy.events == ["client refused the forged certificate"]
        with OnPathProxy(server, mode="relay") as relay:
            assert _post(relay.port, good)["status"] == 200
        assert len(relay.transcript) > 1000 and KEY.encode() not in relay.transcript and relay.leaked_keys == []
    # a client that does not verify is fooled by the forged certificate
    with PredictServer(api, tls.server_context(pki.server_cert, pki.server_key)) as server, \
            OnPathProxy(server, forged_cert=pki.forged_server_cert, forged_key=pki.forged_server_key) as proxy:
        careless = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        careless.check_hostname, careless.verify_mode = False, ssl.CERT_NONE
        out = _post(proxy.port, careless)
    assert proxy.leaked_keys == [KEY] and out["labels"] == [(c + 1) % 10 for c in api.predict(KEY, _x())["labels"]]


def test_query_streams_carry_a_truth_that_naive_monitors_miss() -> None:
    from scipy.stats import shapiro

    streams = extraction.query_streams(0)
    assert [s.key for s in streams] == [s.key for s in extraction.query_streams(0)]
    assert sum(s.attacker for s in streams) == 8 and len(streams) == 16
    assert all(s.queries.shape == (60, 64) and 0 <= s.queries.min() and s.queries.max() <= 1 for s in streams)

    def prada_w(q: np.ndarray) -> float:
        d = np.linalg.norm(q[:, None] - q[None], axis=-1)
        return float(shapiro([d[i, :i].min() for i in range(1, len(q))]).statistic)

    w = {s.kind: prada_w(s.queries) for s in streams}
    assert w["perturb"] < 0.9 < min(prada_w(s.queries) for s in streams if not s.attacker)
    assert w["noise"] > 0.9  # PRADA's test alone misses uniform noise: the lab's monitor needs more than one signal


def test_watermark_separates_copies_from_independent_models() -> None:
    tx, ty = watermark.trigger_set(0)
    hits = {s.how: int(np.sum(extraction.labels(s.model, tx) == ty)) for s in watermark.suspects(0) if s.stolen}
    independent = [int(np.sum(extraction.labels(s.model, tx) == ty)) for s in watermark.suspects(0) if not s.stolen]
    assert len(hits) == 4 and len(independent) == 4
    assert min(hits.values()) >= 30 and max(independent) <= 10
