"""Secure aggregation's building blocks (Bonawitz et al. 2017, *Practical Secure Aggregation for
Privacy-Preserving Machine Learning*, CCS): key agreement, a PRG, fixed-point encoding.

* **Pairwise seeds from a real key agreement.** Each client holds an X25519 key pair (the
  ``cryptography`` package); clients ``i < j`` agree on a shared secret
  ``X25519(sk_i, pk_j) == X25519(sk_j, pk_i)`` and derive a 32-byte seed from it with
  HKDF-SHA256 (``info = b"aisec-secagg pair i j"``). The server relays public keys and never
  learns the seeds. Keys are derived from ``seed`` here so that a lab run is reproducible; real
  clients draw them with ``os.urandom``.
* **PRG.** :func:`prg` expands a seed into ``size`` numbers in ``[0, 2**32)`` with the ChaCha20
  keystream (a real cryptographic PRG), so a mask is unpredictable without the seed.
* **Fixed point.** Masks cancel *exactly* only in an integer ring: :func:`encode` maps floats to
  ``Z_{2**32}`` with 16 fractional bits (``round(v * 2**16) mod 2**32``), :func:`decode` maps back
  (values ``>= 2**31`` are negative). Sums of up to ``n`` encoded vectors decode correctly while
  ``|sum| < 2**15``; the rounding error is at most ``n * 2**-17`` per coordinate.

Not modelled: Shamir secret sharing of the seeds and the self-masks ``b_i`` that make dropout
recovery safe against a server that lies about who dropped (the lab's recovery simply has the
survivors reveal their seeds with the dropped client), and authenticated channels.
"""

from __future__ import annotations

import numpy as np

#: The ring of the masked values, Z_{2**32}.
MODULUS = 2**32
#: Fixed-point scale: 16 fractional bits.
SCALE = 2**16


def encode(vector: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Floats -> uint64 array of values in ``[0, MODULUS)``: ``round(v * scale) mod MODULUS``."""
    q = np.round(np.asarray(vector, dtype=np.float64) * scale).astype(np.int64)
    return np.mod(q, MODULUS).astype(np.uint64)


def decode(values: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Inverse of :func:`encode` (for a single vector or a sum of encoded vectors taken mod
    ``MODULUS``): values ``>= MODULUS // 2`` stand for negatives. Returns float64."""
    v = np.mod(np.asarray(values, dtype=np.uint64), MODULUS).astype(np.int64)
    v = np.where(v >= MODULUS // 2, v - MODULUS, v)
    return v.astype(np.float64) / scale


def client_private_keys(n_clients: int, seed: int) -> list:
    """X25519 private keys of the clients, reproducible from ``seed`` (real clients: random)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    rng = np.random.default_rng(seed)
    return [X25519PrivateKey.from_private_bytes(rng.bytes(32)) for _ in range(n_clients)]


def agree(private_key, peer_public_key, i: int, j: int) -> bytes:
    """The 32-byte seed of the pair ``{i, j}`` as one side derives it: X25519 then HKDF-SHA256
    with ``info = b"aisec-secagg pair {min} {max}"`` (the same for both sides)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    low, high = min(i, j), max(i, j)
    shared = private_key.exchange(peer_public_key)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"aisec-secagg pair {low} {high}".encode()).derive(shared)


def pairwise_seeds(n_clients: int, seed: int) -> dict[tuple[int, int], bytes]:
    """``{(i, j): seed_ij}`` for every pair ``i < j`` of clients, each derived by client ``i`` with
    :func:`agree` from its private key and client ``j``'s public key (client ``j`` derives the
    same bytes from its side; :func:`agree` is symmetric)."""
    keys = client_private_keys(n_clients, seed)
    public = [k.public_key() for k in keys]
    return {(i, j): agree(keys[i], public[j], i, j) for i in range(n_clients) for j in range(i + 1, n_clients)}


def prg(seed: bytes, size: int) -> np.ndarray:
    """``size`` pseudo-random numbers in ``[0, MODULUS)`` (uint64 array) from a 32-byte seed: the
    ChaCha20 keystream (zero nonce) read as little-endian uint32."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    if len(seed) != 32:
        raise ValueError("a PRG seed is 32 bytes")
    stream = Cipher(algorithms.ChaCha20(seed, b"\x00" * 16), mode=None).encryptor().update(b"\x00" * (4 * size))
    return np.frombuffer(stream, dtype="<u4").astype(np.uint64)
