"""PEM handling: read what dehydrated wrote, and describe it the way the appliance does.

Owns splitting a chain file into certificates, fingerprints, serial numbers (upper-case hex as
NITRO reports them), subject/issuer, SAN names, expiry, and checking that a private key belongs
to a certificate (RSA and EC). Keys are re-encoded as traditional unencrypted PEM, which every
NetScaler firmware accepts, and dehydrated 0.7.0's leading ``EC PARAMETERS`` block is dropped.
Nothing here talks to the appliance; every problem is an :class:`InputError` naming the file.
A private key's content never appears in a message.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from .errors import InputError

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----[ \t]*\r?\n?", re.DOTALL
)
_KEY_LABELS = (b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY")
_ENCRYPTED_LABEL = b"ENCRYPTED PRIVATE KEY"


@dataclass(frozen=True)
class Certificate:
    """One X.509 certificate, with the properties deploy and reconciliation compare."""

    pem: bytes  # this certificate alone, normalised PEM
    fingerprint: str  # SHA-256 of the DER, lower-case hex
    serial: str  # upper-case hex without leading zeros, as NITRO reports it (modulo zeros)
    subject: str  # RFC 4514 string
    issuer: str
    common_name: Optional[str]
    issuer_common_name: Optional[str]
    names: tuple[str, ...]  # SAN DNS names, in certificate order
    not_after: datetime.datetime  # timezone-aware UTC
    public_key_der: bytes  # SubjectPublicKeyInfo
    self_signed: bool

    @property
    def primary_name(self) -> str:
        """The name dehydrated files the certificate under: first SAN, else the CN."""
        if self.names:
            return self.names[0]
        if self.common_name:
            return self.common_name
        return self.fingerprint[:16]

    @property
    def key_type(self) -> str:
        """``RSA`` or ``ECC`` (as NITRO's ``publickey`` names them), else ``OTHER``."""
        public = serialization.load_der_public_key(self.public_key_der)
        if isinstance(public, rsa.RSAPublicKey):
            return "RSA"
        return "ECC" if isinstance(public, ec.EllipticCurvePublicKey) else "OTHER"


@dataclass(frozen=True)
class PrivateKey:
    """An unencrypted private key, ready to upload (``pem`` is secret: never log it)."""

    pem: bytes  # traditional PEM ("RSA PRIVATE KEY" / "EC PRIVATE KEY"), no EC PARAMETERS
    public_key_der: bytes
    algorithm: str  # "RSA" or "EC"

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the public key: identifies the key pair without revealing it."""
        return hashlib.sha256(self.public_key_der).hexdigest()

    def __repr__(self) -> str:
        return f"PrivateKey(algorithm={self.algorithm!r}, fingerprint={self.fingerprint[:16]})"


def normalize_serial(serial: str) -> str:
    """Upper-case hex without separators or leading zeros, for comparing NITRO serials."""
    text = re.sub(r"[^0-9A-Fa-f]", "", serial).upper().lstrip("0")
    return text or "0"


def parse_certificate(der_or_pem: bytes, source: str = "certificate") -> Certificate:
    """Describe one certificate given as PEM (first block) or DER."""
    try:
        if b"-----BEGIN" in der_or_pem:
            cert = x509.load_pem_x509_certificate(der_or_pem)
        else:
            cert = x509.load_der_x509_certificate(der_or_pem)
    except ValueError as exc:
        raise InputError(f"{source}: not a readable X.509 certificate ({exc})") from None
    return _describe(cert)


def read_certificates(path: PathLike) -> list[Certificate]:
    """Every certificate in a PEM file, in file order; anything else in it is an error."""
    data = _read(path)
    found: list[Certificate] = []
    for label, _body, raw in _blocks(data, path):
        if label != b"CERTIFICATE":
            raise InputError(
                f"{path}: contains a {label.decode()} block where only certificates belong",
                hint="point the hook at dehydrated's cert.pem / chain.pem",
            )
        found.append(parse_certificate(raw, f"{path}: certificate #{len(found) + 1}"))
    return found


def read_certificate(path: PathLike) -> Certificate:
    """The single certificate of a cert.pem; more than one or none is an error."""
    certs = read_certificates(path)
    if len(certs) != 1:
        raise InputError(
            f"{path}: expected exactly one certificate, found {len(certs)}",
            hint="pass dehydrated's cert.pem, not fullchain.pem",
        )
    return certs[0]


def read_chain(path: PathLike) -> list[Certificate]:
    """The intermediates of a chain file, leaf-side first; a self-signed root is dropped.

    The appliance must never get the root (clients have it; sending it only wastes bytes and
    breaks clients that distrust it), so a chain file that ends in a root is accepted and the
    root left out.
    """
    return [cert for cert in read_certificates(path) if not cert.self_signed]


def read_private_key(path: PathLike) -> PrivateKey:
    """Load an unencrypted RSA or EC key, dropping an ``EC PARAMETERS`` block before it."""
    data = _read(path)
    _warn_if_exposed(path)
    keys = []
    for label, _body, raw in _blocks(data, path):
        if label == b"EC PARAMETERS":
            continue  # dehydrated 0.7.0 writes the curve parameters in front of the key
        if label == _ENCRYPTED_LABEL or (label in _KEY_LABELS and b"ENCRYPTED" in _body[:200]):
            raise _encrypted(path)
        if label not in _KEY_LABELS:
            raise InputError(f"{path}: contains a {label.decode()} block, expected a private key")
        keys.append(raw)
    if len(keys) != 1:
        raise InputError(f"{path}: expected exactly one private key, found {len(keys)}")
    return _load_key(keys[0], path)


def key_matches(key: PrivateKey, cert: Certificate) -> bool:
    """True when ``key`` is the private half of ``cert``'s public key."""
    return key.public_key_der == cert.public_key_der


def issued_by(child: Certificate, parent: Certificate) -> bool:
    """True when ``parent``'s subject is ``child``'s issuer (names only, no signature check)."""
    return child.issuer == parent.subject


# -- helpers ------------------------------------------------------------------------------


def _read(path: PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _warn_if_exposed(path: PathLike) -> None:
    # dehydrated writes keys with umask 077; a key others can read has already leaked locally.
    mode = stat.S_IMODE(Path(path).stat().st_mode)
    if mode & 0o077:
        logger.warning("%s holds a private key and is readable by group or others (mode %04o); "
                       "run: chmod 600 %s", path, mode, path)


def _blocks(data: bytes, path: PathLike) -> list[tuple[bytes, bytes, bytes]]:
    """(label, body, whole block) for every PEM block; text between blocks is an error."""
    found: list[tuple[bytes, bytes, bytes]] = []
    position = 0
    for match in _BLOCK.finditer(data):
        _reject_garbage(data[position:match.start()], path)
        found.append((match.group(1), match.group(2), match.group(0)))
        position = match.end()
    _reject_garbage(data[position:], path)
    return found


def _reject_garbage(between: bytes, path: PathLike) -> None:
    if between.strip():
        raise InputError(
            f"{path}: is not a clean PEM file (unexpected text outside the PEM blocks)",
            hint="the file may be truncated or corrupted; let dehydrated re-issue it (--force)",
        )


def _encrypted(path: PathLike) -> InputError:
    return InputError(
        f"{path}: the private key is encrypted; the appliance needs an unencrypted key",
        hint="dehydrated writes unencrypted keys; decrypt it with 'openssl pkey -in KEY -out NEW'",
    )


def _load_key(raw: bytes, path: PathLike) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except TypeError:  # "Password was not given but private key is encrypted"
        raise _encrypted(path) from None
    except (ValueError, UnsupportedAlgorithm):
        # the library's message may quote key material; say only what is wrong
        raise InputError(f"{path}: not a readable private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        algorithm = "RSA"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = "EC"
    else:
        raise InputError(f"{path}: unsupported key type {type(key).__name__}; use RSA or ECDSA")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PrivateKey(pem=pem, public_key_der=public, algorithm=algorithm)


def _describe(cert: x509.Certificate) -> Certificate:
    der = cert.public_bytes(serialization.Encoding.DER)
    return Certificate(
        pem=cert.public_bytes(serialization.Encoding.PEM),
        fingerprint=hashlib.sha256(der).hexdigest(),
        serial=format(cert.serial_number, "X"),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=_cn(cert.subject),
        issuer_common_name=_cn(cert.issuer),
        names=_san_names(cert),
        not_after=_not_after(cert),
        public_key_der=cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        self_signed=cert.subject == cert.issuer,
    )


def _cn(name: x509.Name) -> Optional[str]:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _san_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return ()
    san = ext.value
    assert isinstance(san, x509.SubjectAlternativeName)
    return tuple(san.get_values_for_type(x509.DNSName))


def _not_after(cert: x509.Certificate) -> datetime.datetime:
    # cryptography >= 42 has the aware property and deprecates the naive one
    aware = getattr(cert, "not_valid_after_utc", None)
    if isinstance(aware, datetime.datetime):
        return aware
    return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
