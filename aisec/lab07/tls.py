"""Lab 7: a course certificate authority for the served model, made with ``cryptography``.

``course_pki(seed, directory)`` writes PEM files for: the course CA, the model server's certificate
(SAN ``127.0.0.1`` and ``localhost``, signed by the CA), a client certificate signed by the CA (for
mutual TLS), and the on-path attacker's material: its own CA, a server certificate for the same
names signed by *that* CA, and a client certificate signed by it (a client the server must refuse).

Keys are derived from the seed (``ec.derive_private_key``), so one seed always gives the same keys;
the validity window is around the current time, so the certificates themselves are fresh per run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

SERVER_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class PKI:
    """Paths of the PEM files of one seed's course PKI (and of the attacker's look-alike)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    attacker_ca_cert: Path
    forged_server_cert: Path  # same names as the server, signed by the attacker's CA
    forged_server_key: Path
    rogue_client_cert: Path  # a client certificate the course CA never signed
    rogue_client_key: Path


def _key(seed: int, role: str):
    from cryptography.hazmat.primitives.asymmetric import ec

    digest = hashlib.sha256(f"aisec-lab07-{seed}-{role}".encode()).digest()
    # P-256's order is just below 2**256: reducing a hash modulo a smaller bound keeps the scalar valid.
    return ec.derive_private_key(int.from_bytes(digest, "big") % (2**255) + 1, ec.SECP256R1())


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AI security course"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject_key, subject: str, issuer_key, issuer: str, *, ca: bool, server: bool, serial: int):
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(subject_key.public_key()).serial_number(serial)
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                        critical=True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, name: str, cert, key=None) -> tuple[Path, Path | None]:
    from cryptography.hazmat.primitives import serialization

    cert_path = directory / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = None
    if key is not None:
        key_path = directory / f"{name}.key"
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return cert_path, key_path


def course_pki(seed: int, directory: str | Path) -> PKI:
    """Make (or remake) the PEM files of seed ``seed`` in ``directory`` and return their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, bad_ca_key = _key(seed, "ca"), _key(seed, "attacker-ca")
    server_key, client_key = _key(seed, "server"), _key(seed, "client")
    forged_key, rogue_key = _key(seed, "forged-server"), _key(seed, "rogue-client")
    ca_name, bad_name = f"Course CA {seed}", f"Course CA {seed}"  # the attacker copies the name: only the key differs
    base = 1000 * seed
    ca = _certificate(ca_key, ca_name, ca_key, ca_name, ca=True, server=False, serial=base + 1)
    bad_ca = _certificate(bad_ca_key, bad_name, bad_ca_key, bad_name, ca=True, server=False, serial=base + 2)
    server = _certificate(server_key, "model server", ca_key, ca_name, ca=False, server=True, serial=base + 3)
    client = _certificate(client_key, "analyst client", ca_key, ca_name, ca=False, server=False, serial=base + 4)
    forged = _certificate(forged_key, "model server", bad_ca_key, bad_name, ca=False, server=True, serial=base + 5)
    rogue = _certificate(rogue_key, "analyst client", bad_ca_key, bad_name, ca=False, server=False, serial=base + 6)
    ca_cert, _ = _write(d, "ca", ca)
    bad_ca_cert, _ = _write(d, "attacker-ca", bad_ca)
    server_cert, server_key_path = _write(d, "server", server, server_key)
    client_cert, client_key_path = _write(d, "client", client, client_key)
    forged_cert, forged_key_path = _write(d, "forged-server", forged, forged_key)
    rogue_cert, rogue_key_path = _write(d, "rogue-client", rogue, rogue_key)
    assert server_key_path and client_key_path and forged_key_path and rogue_key_path
    return PKI(ca_cert, server_cert, server_key_path, client_cert, client_key_path, bad_ca_cert,
               forged_cert, forged_key_path, rogue_cert, rogue_key_path)


def server_context(cert: Path, key: Path, client_ca: Path | None = None):
    """A server-side ``ssl.SSLContext`` (TLS 1.2+). With ``client_ca`` it requires a client certificate
    signed by that CA (mutual TLS); without, any client may connect."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(str(client_ca))
    return ctx
