"""A lab's certificate authority: made by `up`, trusted inside `vpclab exec`, gone with
`down` (it lives in /run/vpclab/<lab>/ only).

`make(directory, lab, stem, names)` writes

* `ca.crt` / `ca.key`: a self-signed CA, "vpclab <lab> CA", EC P-256, valid 30 days,
  made by the first call and reused by the next (API Gateway's and every ALB's
  certificate are signed by the one CA a client trusts);
* `<stem>.crt` / `<stem>.key`: a server certificate for `names` (DNS SANs, wildcards
  allowed) signed by it; the .crt holds the chain (leaf, then CA) as servers want it;
* `ca-bundle.crt`: the host's trusted certificates followed by the lab CA.
  `vpclab exec` bind-mounts it over /etc/ssl/certs/ca-certificates.crt in the command's
  private mount namespace (nsenter.private_mounts), so curl, Python and OpenSSL trust
  the lab's API Gateway with no `-k`, and nothing in /etc is written.

P-256 rather than RSA: a key takes microseconds instead of the ~100 ms of RSA-2048,
and every client vpclab meets (curl, OpenSSL, wrk, h2load) speaks ECDHE-ECDSA with
TLS 1.2. `cryptography` is the library (the project's stack).
"""
from __future__ import annotations

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BUNDLE = "ca-bundle.crt"
VALID = datetime.timedelta(days=30)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: str, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _authority(directory: str, lab: str, now: datetime.datetime
               ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The lab's CA: the one in `directory` when there is one (every kind's certificate
    — API Gateway's, each ALB's — is signed by the same CA), else a new one."""
    crt, key = os.path.join(directory, "ca.crt"), os.path.join(directory, "ca.key")
    if os.path.exists(crt) and os.path.exists(key):
        with open(crt, "rb") as f:
            ca_cert = x509.load_pem_x509_certificate(f.read())
        with open(key, "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), password=None)
        if isinstance(ca_key, ec.EllipticCurvePrivateKey):
            return ca_cert, ca_key
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vpclab"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"vpclab {lab} CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + VALID)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                            crl_sign=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                              critical=False)
               .sign(ca_key, hashes.SHA256()))
    _write(crt, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(key, _key_pem(ca_key), 0o600)
    return ca_cert, ca_key


def make(directory: str, lab: str, stem: str, dns_names: list[str]) -> dict[str, str]:
    """The lab's CA (made once), a server certificate `stem` for `dns_names` signed by
    it, and the bundle; return their paths."""
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    ca_cert, ca_key = _authority(directory, lab, now)
    ca_name = ca_cert.subject
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + VALID)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    paths = {"ca": os.path.join(directory, "ca.crt"),
             "ca_key": os.path.join(directory, "ca.key"),
             "cert": os.path.join(directory, f"{stem}.crt"),
             "key": os.path.join(directory, f"{stem}.key"),
             "bundle": os.path.join(directory, BUNDLE)}
    _write(paths["cert"], cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
    _write(paths["key"], _key_pem(key), 0o600)
    try:
        with open(SYSTEM_BUNDLE, "rb") as f:
            system = f.read()
    except OSError:
        system = b""
    _write(paths["bundle"], system + (b"" if system.endswith(b"\n") or not system else b"\n")
           + ca_pem)
    return paths
