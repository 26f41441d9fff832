"""Lab 7, part A: a model folder signed with OpenSSF ``model-signing`` (key-based, offline), and the
ways an attacker changes it afterwards.

The folder looks like a Hugging Face checkpoint (config, tokenizer, two equal-size safetensors
shards). ``model-signing`` hashes every file into a manifest, wraps it in an in-toto statement, signs
that in a DSSE envelope and writes a Sigstore bundle (here with an ECDSA P-256 key, no network,
no transparency log). The tamperings: a modified shard (same size), two shards swapped (same sizes,
every file still one the publisher signed), a file added, a file removed, a manifest rewritten to
match tampered files, and a bundle re-signed with the attacker's own key.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
KINDS = ("intact", "modified", "swapped", "added", "removed", "forged_manifest", "other_key")


def key_pair(seed: int) -> tuple[bytes, bytes]:
    """(private key PEM, public key PEM) of a P-256 key derived from ``seed`` (reproducible)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    secret = int.from_bytes(np.random.default_rng(20_000 + seed).bytes(31), "big") + 1
    key = ec.derive_private_key(secret, ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def model_folder(folder: Path, seed: int) -> Path:
    """Write a small checkpoint into ``folder``: config, tokenizer and two shards of equal size."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "tiny", "hidden_size": 16, "seed": seed}, indent=2))
    (folder / "tokenizer.json").write_text(json.dumps({"vocab": {f"tok{i}": i for i in range(32)}}))
    for shard in SHARDS:
        save_file({"weight": rng.normal(size=(16, 16)).astype(np.float32)}, str(folder / shard))
    return folder


def _with_key_file(pem: bytes, work: Path, name: str) -> Path:
    path = Path(work) / name
    path.write_bytes(pem)
    return path


def sign_folder(folder: Path, private_pem: bytes, bundle: Path) -> None:
    """Sign every file of ``folder`` with model-signing's elliptic-key signer; write the bundle."""
    from model_signing import signing

    with tempfile.TemporaryDirectory() as tmp:
        key = _with_key_file(private_pem, Path(tmp), "key.pem")
        signing.Config().use_elliptic_key_signer(private_key=key).sign(Path(folder), Path(bundle))


def verify_folder(folder: Path, public_pem: bytes, bundle: Path) -> tuple[bool, str]:
    """model-signing's verdict: (True, "") or (False, the library's error message)."""
    from cryptography.exceptions import InvalidSignature
    from model_signing import verifying

    with tempfile.TemporaryDirectory() as tmp:
        key = _with_key_file(public_pem, Path(tmp), "key.pub")
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=key).verify(Path(folder), Path(bundle))
        except ValueError as exc:  # a file that does not match the signed manifest
            return False, str(exc)
        except InvalidSignature:  # the envelope's signature does not check with this key
            return False, "invalid signature"
    return True, ""


def _flip_byte(path: Path, rng: np.random.Generator) -> None:
    data = bytearray(path.read_bytes())
    i = int(rng.integers(len(data) - 64, len(data)))  # inside the tensor data, past the JSON header
    data[i] ^= 1 << int(rng.integers(8))
    path.write_bytes(bytes(data))


def _forge_manifest(folder: Path, bundle: Path) -> None:
    """Rewrite the manifest's digests to the files' current ones; the signature is left as it was."""
    import base64
    import hashlib

    doc = json.loads(bundle.read_text())
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    for res in statement["predicate"]["resources"]:
        path = folder / res["name"]
        if path.exists():
            res["digest"] = hashlib.sha256(path.read_bytes()).hexdigest()
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement, indent=2).encode()).decode()
    bundle.write_text(json.dumps(doc))


def tamper(folder: Path, bundle: Path, kind: str, seed: int) -> None:
    """Apply one attack ``kind`` (see ``KINDS``) to a signed ``folder`` and its ``bundle``, seeded."""
    rng = np.random.default_rng(seed)
    folder, bundle = Path(folder), Path(bundle)
    if kind == "intact":
        return
    if kind in ("modified", "forged_manifest"):
        _flip_byte(folder / SHARDS[int(rng.integers(2))], rng)
        if kind == "forged_manifest":
            _forge_manifest(folder, bundle)
    elif kind == "swapped":
        a, b = (folder / s for s in SHARDS)
        data_a = a.read_bytes()
        a.write_bytes(b.read_bytes())
        b.write_bytes(data_a)
    elif kind == "added":
        extra = ["adapter_model.safetensors", "pytorch_model.bin", "chat_template.jinja"][int(rng.integers(3))]
        (folder / extra).write_bytes(rng.bytes(256))
    elif kind == "removed":
        (folder / ["tokenizer.json", "config.json"][int(rng.integers(2))]).unlink()
    elif kind == "other_key":
        _flip_byte(folder / SHARDS[int(rng.integers(2))], rng)
        sign_folder(folder, key_pair(10_000 + seed)[0], bundle)  # the attacker signs with their own key
    else:
        raise ValueError(f"unknown tampering {kind!r}; known: {KINDS}")


@dataclass(frozen=True)
class Case:
    """One signed model folder after (possibly) an attack."""

    kinds: tuple[str, ...]
    folder: Path
    bundle: Path
    public_pem: bytes


def cases(work: Path, seed: int, kinds: list[tuple[str, ...]] | None = None) -> list[Case]:
    """Signed copies of one seeded model folder in ``work``, each then attacked by its ``kinds``
    (one case per tuple; default: each kind of ``KINDS`` alone). The publisher's key is ``key_pair(seed)``."""
    work = Path(work)
    private, public = key_pair(seed)
    original = model_folder(work / f"original-{seed}", seed)
    out = []
    for i, combo in enumerate(kinds if kinds is not None else [(k,) for k in KINDS]):
        folder = work / f"case-{seed}-{i}" / "model"
        shutil.copytree(original, folder)
        bundle = folder.parent / "model.sig"
        sign_folder(folder, private, bundle)
        for j, kind in enumerate(combo):
            tamper(folder, bundle, kind, seed * 1000 + i * 10 + j)
        out.append(Case(tuple(combo), folder, bundle, public))
    return out
