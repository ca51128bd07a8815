from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from runs_controller.testing.certs import CertificateAuthority, service_account_signing_key_pem


def _load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def test_server_certificate_is_issued_by_the_ca_for_the_given_hosts() -> None:
    ca = CertificateAuthority()
    pair = ca.issue_server("kube-apiserver", ["127.0.0.1", "localhost"])
    cert = _load(pair.cert_pem)
    cert.verify_directly_issued_by(_load(ca.cert_pem))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_client_certificate_carries_user_as_cn_and_groups_as_o() -> None:
    ca = CertificateAuthority()
    cert = _load(ca.issue_client("alice", ("dev", "system:masters")).cert_pem)
    cert.verify_directly_issued_by(_load(ca.cert_pem))
    subject = cert.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["alice"]
    groups = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert groups == ["dev", "system:masters"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_ca_is_a_ca_and_other_cas_do_not_verify_its_leaves() -> None:
    ca, other = CertificateAuthority(), CertificateAuthority()
    constraints = _load(ca.cert_pem).extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is True
    leaf = _load(ca.issue_client("bob").cert_pem)
    with pytest.raises((ValueError, InvalidSignature)):
        leaf.verify_directly_issued_by(_load(other.cert_pem))


def test_key_files_are_private(tmp_path: Path) -> None:
    cert_path, key_path = CertificateAuthority().issue_client("carol").write(tmp_path, "carol")
    assert cert_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_service_account_key_is_pem_private_key() -> None:
    assert service_account_signing_key_pem().startswith(b"-----BEGIN EC PRIVATE KEY-----")
