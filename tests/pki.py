"""A tiny test PKI: roots, intermediates and leaves written the way dehydrated lays them out.

Used by the certificate and deploy tests; independent of ns_letsencrypt so that the code under
test does not grade its own homework.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

Key = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]


def new_key(algo: str = "ec") -> Key:
    if algo == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class Issued:
    cert: x509.Certificate
    key: Key

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
                password: Optional[bytes] = None) -> bytes:
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password
            else serialization.NoEncryption())
        return self.key.private_bytes(serialization.Encoding.PEM, fmt, enc)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test PKI"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def make_ca(cn: str, parent: Optional[Issued] = None, algo: str = "ec",
            key: Optional[Key] = None, days: float = 3650) -> Issued:
    """A CA certificate: self-signed root when ``parent`` is None, else an intermediate;
    valid until ``days`` from now (negative: already expired)."""
    key = key or new_key(algo)
    issuer_name = parent.cert.subject if parent else _name(cn)
    signer = parent.key if parent else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(days=max(1, 1 - days)))
        .not_valid_after(_now() + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
    )
    if parent:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
            critical=False)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def make_leaf(issuer: Issued, names: list[str], algo: str = "ec",
              key: Optional[Key] = None, days: float = 90,
              issued_days_ago: float = 0, common_name: bool = True) -> Issued:
    """A server certificate valid until ``days`` from now (negative: already expired);
    ``common_name=False``: an empty subject, as Let's Encrypt's tlsserver/shortlived profiles."""
    key = key or new_key(algo)
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, names[0])] if common_name else []
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(days=issued_days_ago, hours=1))
        .not_valid_after(_now() + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    return Issued(cert, key)


@dataclass
class Hierarchy:
    root: Issued
    intermediates: list[Issued]  # leaf-side first

    @property
    def issuer(self) -> Issued:
        return self.intermediates[0]

    def chain_pem(self, with_root: bool = False) -> bytes:
        pems = [i.pem for i in self.intermediates]
        if with_root:
            pems.append(self.root.pem)
        return b"".join(pems)


def make_hierarchy(tag: str = "A", length: int = 1, algo: str = "ec",
                   days: float = 3650) -> Hierarchy:
    """root -> int(length) -> ... -> int1; intermediates returned leaf-side first, valid
    until ``days`` from now (negative: already expired)."""
    root = make_ca(f"Test Root {tag}", algo=algo)
    chain: list[Issued] = []
    parent = root
    for depth in range(length, 0, -1):
        parent = make_ca(f"Test Intermediate {tag}{depth}", parent, algo=algo, days=days)
        chain.insert(0, parent)
    return Hierarchy(root, chain)


def write_cert_dir(directory: Path, leaf: Issued, hierarchy: Hierarchy,
                   ec_parameters: bool = False) -> dict[str, Path]:
    """Write cert.pem, chain.pem, fullchain.pem, privkey.pem like dehydrated does."""
    directory.mkdir(parents=True, exist_ok=True)
    key_pem = leaf.key_pem(serialization.PrivateFormat.TraditionalOpenSSL)
    if ec_parameters and isinstance(leaf.key, ec.EllipticCurvePrivateKey):
        key_pem = EC_PARAMS_P256 + key_pem
    files = {
        "cert": directory / "cert.pem",
        "chain": directory / "chain.pem",
        "fullchain": directory / "fullchain.pem",
        "key": directory / "privkey.pem",
    }
    files["cert"].write_bytes(leaf.pem)
    files["chain"].write_bytes(hierarchy.chain_pem())
    files["fullchain"].write_bytes(leaf.pem + hierarchy.chain_pem())
    files["key"].write_bytes(key_pem)
    files["key"].chmod(0o600)  # dehydrated writes keys with umask 077
    return files


# What `openssl ecparam -name prime256v1 -genkey` prints before the key (dehydrated 0.7.0).
EC_PARAMS_P256 = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
