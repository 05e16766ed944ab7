"""Certificates and site keys: a real chain, the right names, Flower can load them."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key
from flwr.cli.supernode.register import try_load_public_key

from fedmodel.deploy.cert_files import check_certificate, check_site_private_key
from fedmodel.deploy.cert_validity import MAX_DAYS
from fedmodel.deploy.certs import create_superlink_certificates
from fedmodel.deploy.site_keys import create_site_keys
from fedmodel.errors import FedmodelError


def test_superlink_certificate_is_signed_by_the_ca_for_every_host(
    tmp_path: Path,
) -> None:
    made = create_superlink_certificates(
        tmp_path, hosts=["superlink.example.org", "10.0.0.5", "::1"], days=30
    )
    ca = x509.load_pem_x509_certificate(made.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(made.cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["superlink.example.org"]
    # 127.0.0.1 added (::1 given): the SuperLink's own SuperExec dials it.
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("127.0.0.1"),
    ]
    for key in (made.ca_key, made.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_site_keys_load_in_flower_as_a_nist_ec_pair(tmp_path: Path) -> None:
    keys = create_site_keys(tmp_path, name="hospital-a")
    private = load_ssh_private_key(keys.private_key.read_bytes(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert stat.S_IMODE(keys.private_key.stat().st_mode) == 0o600
    # What `flwr supernode register` accepts.
    assert try_load_public_key(keys.public_key)


def test_nothing_is_overwritten(tmp_path: Path) -> None:
    create_site_keys(tmp_path, name="site-0")
    before = (tmp_path / "site-0").read_bytes()
    with pytest.raises(FedmodelError, match=r"site-0\.pub already exist; .*never"):
        create_site_keys(tmp_path, name="site-0")
    assert (tmp_path / "site-0").read_bytes() == before
    (tmp_path / "site-1.pub").write_text("kept\n")
    with pytest.raises(FedmodelError, match=r"site-1\.pub already exists; "):
        create_site_keys(tmp_path, name="site-1")
    assert not (tmp_path / "site-1").exists()
    create_superlink_certificates(tmp_path, hosts=["localhost"])
    with pytest.raises(FedmodelError, match="ca.crt"):
        create_superlink_certificates(tmp_path, hosts=["localhost"])


@pytest.mark.parametrize(
    ("hosts", "fragment"),
    [([], "at least one host"), (["host:9093"], "'host:9093'"), (["a b"], "'a b'")],
)
def test_bad_hosts_are_named(tmp_path: Path, hosts: list[str], fragment: str) -> None:
    with pytest.raises(FedmodelError, match=fragment):
        create_superlink_certificates(tmp_path, hosts=hosts)
    assert not list(tmp_path.iterdir())


def test_bad_site_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FedmodelError, match="not usable as a file name"):
        create_site_keys(tmp_path, name="../escape")


@pytest.mark.parametrize("days", [0, MAX_DAYS + 1, 100_000_000])
def test_days_out_of_range_are_refused_before_the_folder_is_made(
    tmp_path: Path, days: int
) -> None:
    out = tmp_path / "c4"
    with pytest.raises(FedmodelError, match=f"--days must be between 1 and .*{days}"):
        create_superlink_certificates(out, hosts=["localhost"], days=days)
    assert not out.exists()
    create_superlink_certificates(out, hosts=["localhost"], days=MAX_DAYS)


def test_an_output_folder_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    a_file = tmp_path / "a.csv"
    a_file.write_text("text,label\n")
    for directory in (a_file, a_file / "certs"):
        with pytest.raises(FedmodelError, match=f"--dir: .*{directory}.*is a file"):
            create_superlink_certificates(directory, hosts=["localhost"])
        with pytest.raises(FedmodelError, match=f"--dir: .*{directory}.*is a file"):
            create_site_keys(directory, name="hospital-a")
    if Path("/proc/self").is_dir():  # Linux: no file can be made in /proc
        with pytest.raises(FedmodelError, match="--dir: .*/proc/x.*cannot be written"):
            create_superlink_certificates(Path("/proc/x"), hosts=["localhost"])


def test_a_site_checks_its_certificate_and_key_parse(tmp_path: Path) -> None:
    made = create_superlink_certificates(tmp_path / "ca", hosts=["localhost"])
    keys = create_site_keys(tmp_path / "keys", name="hospital-a")
    check_certificate(made.ca_cert, option="--ca-cert")
    check_site_private_key(keys.private_key, option="--auth-key")
    not_pem = tmp_path / "a.csv"
    not_pem.write_text("text,label\nhello,a\n")
    with pytest.raises(FedmodelError, match=f"--ca-cert: {not_pem} is not a PEM"):
        check_certificate(not_pem, option="--ca-cert")
    # The public key, the CA's PEM key, a certificate: none signs a node in.
    for wrong in (not_pem, keys.public_key, made.ca_key, made.ca_cert):
        with pytest.raises(FedmodelError, match=f"--auth-key: {wrong} is not an"):
            check_site_private_key(wrong, option="--auth-key")
