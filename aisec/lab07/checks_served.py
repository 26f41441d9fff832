"""Visible checks of lab 7, part B (the served model: q6-q10). They run on the visible seed only; hidden
tests rebuild servers, victims, streams and suspects on another seed. The checks test properties of the
answers, never a copy of the solution."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from typing import Any

import numpy as np

from aisec.check import Check, expect_type

KEY = "key-check"


@lru_cache(maxsize=1)
def _pki() -> Any:
    from aisec.lab07 import tls

    return tls.course_pki(0, tempfile.mkdtemp(prefix="lab07-check-"))


def _inputs() -> tuple[np.ndarray, list[int]]:
    from aisec.lab07 import extraction

    x = extraction.fidelity_set(0)[:5]
    return x, [int(c) for c in extraction.labels(extraction.victim(0), x)]


def _api() -> Any:
    from aisec.lab07 import extraction
    from aisec.lab07.serving import ModelAPI

    return ModelAPI(extraction.victim(0), keys=(KEY,))


def _own() -> dict[str, Any]:
    p = _pki()
    return {"ca_file": p.ca_cert, "cert_file": p.client_cert, "key_file": p.client_key}


# -------------------------------------------------------------------------------- q6 TLS client


def _q6_refuses_http(answer: Any) -> None:
    from aisec.lab07.serving import OnPathProxy, PredictServer

    x, _ = _inputs()
    with PredictServer(_api(), deadline=5, max_requests=3) as server, OnPathProxy(server, deadline=5) as proxy:
        try:
            answer(proxy.url("http"), KEY, x, **_own())
        except ValueError:
            pass
        else:
            raise AssertionError("an http:// URL should raise ValueError")
        assert not proxy.leaked_keys, "the key was sent over plain HTTP before refusing: check the scheme first"


def _q6_mutual_tls(answer: Any) -> None:
    from aisec.lab07 import tls
    from aisec.lab07.serving import PredictServer

    p = _pki()
    x, truth = _inputs()
    ctx = tls.server_context(p.server_cert, p.server_key, client_ca=p.ca_cert)
    with PredictServer(_api(), ctx, deadline=5, max_requests=3) as server:
        labels = answer(server.url, KEY, x, **_own())
        refused = server.refused_handshakes
    expect_type(labels, list, "secure_predict(...)")
    assert refused == 0, "the mutual-TLS server refused the handshake: load the client certificate and key"
    assert all(type(c) is int for c in labels), "return the labels as Python ints"
    assert labels == truth, "the labels differ from the served model's: send the inputs and read 'labels'"


def _q6_forged(answer: Any) -> None:
    import ssl

    from aisec.lab07 import tls
    from aisec.lab07.serving import OnPathProxy, PredictServer

    p = _pki()
    x, _ = _inputs()
    with PredictServer(_api(), tls.server_context(p.server_cert, p.server_key), deadline=5, max_requests=3) as server, \
            OnPathProxy(server, forged_cert=p.forged_server_cert, forged_key=p.forged_server_key, deadline=5) as proxy:
        try:
            answer(proxy.url("https"), KEY, x, **_own())
        except ssl.SSLCertVerificationError:
            pass
        else:
            raise AssertionError("a certificate from another CA was accepted: verify against ca_file (CERT_REQUIRED)")
        assert not proxy.leaked_keys, "the proxy read the API key"


# -------------------------------------------------------------------------------- q7/q8 extraction

_SHAPES = {"body.0.weight": (64, 64), "body.0.bias": (64,), "head.weight": (10, 64), "head.bias": (10,)}


def _stolen(answer: Any, output: str, budget: int) -> tuple[float, int]:
    from aisec.lab07 import extraction
    from aisec.lab07.serving import ModelAPI

    victim = extraction.victim(0)
    api = ModelAPI(victim, keys=("thief",), output=output, budget=budget)
    weights = answer(api, "thief", extraction.attacker_pool(0), budget, seed=0)
    assert isinstance(weights, dict), "return the state_dict (a dict of tensors)"
    assert set(weights) == set(_SHAPES), "return extraction.surrogate(seed).state_dict()"
    assert all(tuple(np.shape(weights[k])) == s for k, s in _SHAPES.items()), "the tensors have the wrong shapes"
    copy = extraction.load_surrogate({k: np.asarray(v) for k, v in weights.items()})
    return extraction.fidelity(copy, victim, extraction.fidelity_set(0)), api.used("thief")


def _q7_fidelity(answer: Any) -> None:
    fid, used = _stolen(answer, "probabilities", 300)
    assert used > 30, "use the budget: the 30 pool images alone are too few"
    assert fid >= 0.83, f"the copy agrees with the victim on {fid:.0%} of held-out digits: expected at least 83%"


def _q8_fidelity(answer: Any) -> None:
    fid, used = _stolen(answer, "labels", 500)
    assert used > 30, "use the budget: the 30 pool images alone are too few"
    assert fid >= 0.78, f"the copy agrees with the victim on {fid:.0%} of held-out digits: expected at least 78%"


# -------------------------------------------------------------------------------- q9 monitor


def _q9_streams(answer: Any) -> None:
    from aisec.lab07 import extraction

    streams = extraction.query_streams(0)
    flags = [answer(s.queries, extraction.fidelity_set(0)) for s in streams]
    assert all(type(f) in (bool, np.bool_) for f in flags), "return a bool"
    benign = sum(bool(f) for f, s in zip(flags, streams) if not s.attacker)
    caught = {s.kind for f, s in zip(flags, streams) if s.attacker and f}
    missed = sorted(set(extraction.ATTACK_KINDS) - caught)
    assert benign <= 1, f"{benign} of 8 benign users flagged: at most one"
    assert not missed, f"no attacker of these kinds is flagged: {', '.join(missed)}"


# -------------------------------------------------------------------------------- q10 ownership


def _q10_verdicts(answer: Any) -> None:
    from aisec.lab07 import extraction, watermark

    tx, ty = watermark.trigger_set(0)
    owner = extraction.victim(0)
    verdict = answer(lambda x: extraction.labels(owner, x), tx, ty)
    assert type(verdict) in (bool, np.bool_), "return a bool"
    assert verdict, "the owner's own model should be recognised"
    other = watermark.independent_model(0, 0)
    assert not answer(lambda x: extraction.labels(other, x), tx, ty), "an independently trained model was called stolen"
    chance = ty.copy()
    chance[8:] = (chance[8:] + 1) % 10  # 8 of 40 matches: about twice chance, still not evidence
    assert not answer(lambda x: chance, tx, ty), "8 matches in 40 happen by chance too often to prove a copy"


CHECKS = {
    "q6": [Check("an http:// URL is refused with ValueError before the key is sent", _q6_refuses_http),
           Check("over mutual TLS the served labels come back as Python ints", _q6_mutual_tls),
           Check("a forged certificate from another CA raises ssl.SSLCertVerificationError", _q6_forged)],
    "q7": [Check("the copy stolen with 300 queries agrees with the victim on >= 83% of held-out digits", _q7_fidelity)],
    "q8": [Check("against labels only, 500 queries give a copy agreeing on >= 78%", _q8_fidelity)],
    "q9": [Check("on the visible streams every attack kind is flagged and at most one benign user", _q9_streams)],
    "q10": [Check("the owner's model is recognised; an independent model and a chance match are not", _q10_verdicts)],
}

#: An authored hint for every hidden record of part B (by key): the property it tests, never a value.
HIDDEN_HINTS: dict[str, str] = {
    "q6_secure_client_test.outcomes": "with another seed's CA: correct labels direct and through a relay, the forged "
    "certificate and plain HTTP refused with no key leaked, the attacker's client certificate refused",
    "q7_extract_test.stolen_weights": "the grader measures your copy's fidelity to another seed's victim (probabilities)",
    "q7_extract_test.stolen_through_rounding": "the same against probabilities rounded to one decimal, with a smaller budget",
    "q8_label_only_test.stolen_weights": "the grader measures your copy's fidelity to another seed's label-only victim",
    "q9_monitor_test.attackers_flagged": "the attackers among another seed's query streams are flagged",
    "q9_monitor_test.benign_flagged": "few benign users among another seed's query streams are flagged",
    "q10_ownership_test.verdicts": "the right verdict for every one of another seed's suspects",
}
