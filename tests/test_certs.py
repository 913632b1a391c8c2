"""PEM parsing: chains, serials, names, key matching, dehydrated quirks, and clear rejections."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ns_letsencrypt import certs
from ns_letsencrypt.errors import InputError
from tests import pki


@pytest.fixture(scope="module")
def hierarchy() -> pki.Hierarchy:
    return pki.make_hierarchy("C", length=2)


def test_chain_is_split_leaf_side_first_and_root_dropped(tmp_path: Path, hierarchy):
    path = tmp_path / "chain.pem"
    path.write_bytes(hierarchy.chain_pem(with_root=True))
    chain = certs.read_chain(path)
    assert [c.common_name for c in chain] == ["Test Intermediate C1", "Test Intermediate C2"]
    assert len(certs.read_certificates(path)) == 3
    assert certs.issued_by(chain[0], chain[1])


def test_leaf_properties(tmp_path: Path, hierarchy):
    leaf = pki.make_leaf(hierarchy.issuer, ["www.example.com", "example.com"])
    files = pki.write_cert_dir(tmp_path, leaf, hierarchy)
    cert = certs.read_certificate(files["cert"])
    assert cert.names == ("www.example.com", "example.com")
    assert cert.primary_name == "www.example.com"
    assert cert.serial == format(leaf.cert.serial_number, "X")
    assert cert.serial == cert.serial.upper()
    assert cert.issuer_common_name == "Test Intermediate C1"
    assert not cert.self_signed
    assert cert.not_after.tzinfo is not None
    assert len(cert.fingerprint) == 64
    assert certs.issued_by(cert, certs.read_chain(files["chain"])[0])


@pytest.mark.parametrize("algo", ["rsa", "ec"])
def test_key_matches_its_certificate_only(tmp_path: Path, hierarchy, algo):
    leaf = pki.make_leaf(hierarchy.issuer, ["a.example.com"], algo=algo)
    other = pki.make_leaf(hierarchy.issuer, ["a.example.com"], algo=algo)
    files = pki.write_cert_dir(tmp_path, leaf, hierarchy)
    key = certs.read_private_key(files["key"])
    assert key.algorithm == algo.upper()
    assert certs.key_matches(key, certs.read_certificate(files["cert"]))
    (tmp_path / "other.pem").write_bytes(other.pem)
    assert not certs.key_matches(key, certs.read_certificate(tmp_path / "other.pem"))


def test_pkcs8_key_is_reencoded_as_traditional_pem(tmp_path: Path, hierarchy):
    leaf = pki.make_leaf(hierarchy.issuer, ["b.example.com"], algo="rsa")
    path = tmp_path / "privkey.pem"
    path.write_bytes(leaf.key_pem(serialization.PrivateFormat.PKCS8))
    key = certs.read_private_key(path)
    assert key.pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert "PRIVATE KEY-----" not in repr(key)


def test_ec_parameters_block_is_stripped(tmp_path: Path, hierarchy):
    leaf = pki.make_leaf(hierarchy.issuer, ["c.example.com"], algo="ec")
    files = pki.write_cert_dir(tmp_path, leaf, hierarchy, ec_parameters=True)
    assert files["key"].read_bytes().startswith(b"-----BEGIN EC PARAMETERS-----")
    key = certs.read_private_key(files["key"])
    assert b"EC PARAMETERS" not in key.pem
    assert key.pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    assert certs.key_matches(key, certs.read_certificate(files["cert"]))


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8,
                                 serialization.PrivateFormat.TraditionalOpenSSL])
def test_encrypted_key_is_rejected_clearly(tmp_path: Path, hierarchy, fmt):
    leaf = pki.make_leaf(hierarchy.issuer, ["d.example.com"], algo="rsa")
    path = tmp_path / "privkey.pem"
    path.write_bytes(leaf.key_pem(fmt, password=b"secret-pass"))
    with pytest.raises(InputError, match="encrypted") as info:
        certs.read_private_key(path)
    assert str(path) in str(info.value)
    assert "secret-pass" not in str(info.value)


def test_garbage_in_chain_names_the_file(tmp_path: Path, hierarchy):
    path = tmp_path / "chain.pem"
    path.write_bytes(hierarchy.chain_pem() + b"this is not PEM\n")
    with pytest.raises(InputError) as info:
        certs.read_chain(path)
    assert str(path) in str(info.value)


def test_corrupt_certificate_block_names_the_file(tmp_path: Path):
    path = tmp_path / "chain.pem"
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(InputError) as info:
        certs.read_chain(path)
    assert str(path) in str(info.value)


def test_key_in_certificate_file_is_rejected(tmp_path: Path, hierarchy):
    leaf = pki.make_leaf(hierarchy.issuer, ["e.example.com"])
    path = tmp_path / "cert.pem"
    path.write_bytes(leaf.pem + leaf.key_pem())
    with pytest.raises(InputError, match="PRIVATE KEY block"):
        certs.read_certificates(path)


def test_fullchain_is_not_a_cert_file(tmp_path: Path, hierarchy):
    leaf = pki.make_leaf(hierarchy.issuer, ["f.example.com"])
    files = pki.write_cert_dir(tmp_path, leaf, hierarchy)
    with pytest.raises(InputError, match="exactly one certificate"):
        certs.read_certificate(files["fullchain"])


def test_missing_file_is_an_input_error(tmp_path: Path):
    with pytest.raises(InputError, match="cannot read"):
        certs.read_certificate(tmp_path / "nope.pem")


def test_normalize_serial():
    assert certs.normalize_serial("00:0a:1B") == "A1B"
    assert certs.normalize_serial("0A1B") == certs.normalize_serial("a1b")
