"""Certificates and site keys: a real chain, the right names, Flower can load them."""

from __future__ import annotations

import ipaddress
import shutil
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    load_pem_private_key,
    load_ssh_private_key,
)
from cryptography.x509.oid import ExtensionOID
from flwr.cli.supernode.register import try_load_public_key

from fedmodel.cli.errors import EXIT_USER_ERROR
from fedmodel.cli.main import run_command
from fedmodel.deploy.cert_files import check_certificate, check_site_private_key
from fedmodel.deploy.cert_validity import DEFAULT_DAYS, MAX_DAYS
from fedmodel.deploy.certs import create_superlink_certificates
from fedmodel.deploy.launch import superlink_command
from fedmodel.deploy.site_keys import create_site_keys
from fedmodel.deploy.superlink_reissue import reissue_superlink_certificate
from fedmodel.errors import FedmodelError
from tests.unit.dated_certs import sign_with_dates


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
    # Asked again to add a host, it points to --reissue: before, "choose
    # another --dir" led to a new CA, whose ca.crt every site then needed.
    with pytest.raises(FedmodelError, match="ca.crt") as refused:
        create_superlink_certificates(tmp_path, hosts=["localhost", "superlink.lan"])
    assert "add --reissue (signed by the CA there" in str(refused.value)


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


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_a_reissued_certificate_adds_a_host_under_the_folders_ca(
    tmp_path: Path,
) -> None:
    # Before, a host was added only by a new CA in a new folder: a new ca.crt
    # for every site.
    made = create_superlink_certificates(tmp_path, hosts=["superlink.example.org"])
    before = _files(tmp_path)
    hosts = ["superlink.example.org", "203.0.113.10"]
    again = reissue_superlink_certificate(tmp_path, hosts=hosts)
    after = _files(tmp_path)
    for name in ("ca.crt", "ca.key", "superlink.key"):  # read, never written
        assert after[name] == before[name]
    assert again.cert == made.cert and after["superlink.crt"] != before["superlink.crt"]
    assert again.replaced.read_bytes() == before["superlink.crt"]  # kept
    assert again.replaced.name.startswith("superlink.replaced-")
    assert stat.S_IMODE(made.cert.stat().st_mode) == 0o644
    ca = x509.load_pem_x509_certificate(before["ca.crt"])
    cert = x509.load_pem_x509_certificate(after["superlink.crt"])
    cert.verify_directly_issued_by(ca)  # the ca.crt the sites hold
    key = load_pem_private_key(before["superlink.key"], None)
    assert cert.public_key() == key.public_key()
    assert cert.not_valid_after_utc == ca.not_valid_after_utc  # no --days
    names = ("superlink.example.org", "203.0.113.10", "127.0.0.1", "::1")
    assert again.names == names and again.dropped == () and again.unread is None
    # Every name is given each time: one left out is said.
    dropped = reissue_superlink_certificate(tmp_path, hosts=["203.0.113.10"], days=30)
    assert dropped.dropped == ("superlink.example.org",)
    assert len(list(tmp_path.glob("superlink.replaced-*.crt"))) == 2


def test_a_reissue_without_the_folders_ca_writes_nothing(tmp_path: Path) -> None:
    hosts = ["localhost"]
    with pytest.raises(FedmodelError, match=r"holds no ca\.crt: give the folder"):
        reissue_superlink_certificate(tmp_path, hosts=hosts)
    made = create_superlink_certificates(tmp_path / "link", hosts=hosts)
    other = create_superlink_certificates(tmp_path / "other", hosts=hosts)
    kept = made.ca_key.read_bytes()
    made.ca_key.unlink()  # kept offline
    before = _files(made.ca_cert.parent)
    with pytest.raises(FedmodelError, match=r"but not the CA's private key ca\.key"):
        reissue_superlink_certificate(made.ca_cert.parent, hosts=hosts)
    made.ca_key.write_bytes(other.ca_key.read_bytes())  # another CA's key
    with pytest.raises(FedmodelError, match=r"ca\.key is not the key of ca\.crt"):
        reissue_superlink_certificate(made.ca_cert.parent, hosts=hosts)
    made.ca_key.unlink()
    made.ca_key.write_bytes(kept)
    with pytest.raises(FedmodelError, match="would outlast the CA .* --days 36"):
        reissue_superlink_certificate(made.ca_cert.parent, hosts=hosts, days=400)
    assert _files(made.ca_cert.parent) == before | {"ca.key": kept}


def test_a_reissue_under_an_expired_ca_asks_for_a_new_one(tmp_path: Path) -> None:
    # The launch's date check and the re-issue's are one: an expired CA signs
    # nothing any site verifies, and the folder's files stay as they were.
    create_superlink_certificates(tmp_path, hosts=["localhost"])
    sign_with_dates(tmp_path / "ca.crt", days_from_now=(-400, -1))
    held = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(FedmodelError) as refused:
        reissue_superlink_certificate(tmp_path, hosts=["localhost"])
    assert str(refused.value).startswith(f"--dir: {tmp_path / 'ca.crt'} expired on ")
    assert str(refused.value).endswith(
        "no site verifies a certificate it signs; make a new CA (`fedmodel certs "
        "superlink --dir NEW_DIR`), whose ca.crt every site then needs"
    )
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == held


def test_a_reissue_names_the_file_that_does_not_parse(tmp_path: Path) -> None:
    # Before, a ca.crt or ca.key that did not parse was "its ca.crt or ca.key".
    made = create_superlink_certificates(tmp_path / "made", hosts=["localhost"])
    for name, what in (
        ("ca.crt", "is not a PEM certificate (Unable to load PEM"),
        ("ca.key", "is not an unencrypted PEM private key (Unable to load PEM"),
        # An old superlink.crt that does not parse is replaced
        # (test_superlink_reissue.py); one that cannot be read cannot be kept.
        ("superlink.crt", "cannot be read (Is a directory)"),
        ("superlink.key", "cannot be read (Is a directory)"),
    ):
        broken = tmp_path / f"broken-{name}"
        shutil.copytree(made.ca_cert.parent, broken)
        (broken / name).unlink()
        if name.startswith("superlink."):
            (broken / name).mkdir()
        else:
            (broken / name).write_text("not PEM\n")
        before = sorted(broken.iterdir())
        with pytest.raises(FedmodelError) as refused:
            reissue_superlink_certificate(broken, hosts=["localhost"])
        message = str(refused.value)
        assert message.startswith(f"--dir: {broken / name} {what}"), message
        assert message.endswith(
            "give the folder `fedmodel certs superlink` wrote, "
            "which the SuperLink runs with"
        )
        assert sorted(broken.iterdir()) == before  # nothing written


def test_a_reissue_refuses_a_certificate_file_the_launch_refuses(
    tmp_path: Path,
) -> None:
    # Before, a re-issue read only the first PEM block, so a ca.crt whose
    # later block was broken passed it and the launch (TLS reads the whole
    # file) then refused the folder.
    made = create_superlink_certificates(tmp_path / "made", hosts=["localhost"])
    bad_block = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    for name in ("ca.crt", "superlink.crt"):
        broken = tmp_path / f"broken-{name}"
        shutil.copytree(made.ca_cert.parent, broken)
        (broken / name).write_text((broken / name).read_text() + bad_block)
        with pytest.raises(FedmodelError, match=f"--certs: {broken / name} is not"):
            superlink_command(certs_dir=broken, host="0.0.0.0", port=1, database=None)
    # Such a superlink.crt a re-issue replaces (test_superlink_reissue.py).
    broken = tmp_path / "broken-ca.crt"
    before = _files(broken)
    with pytest.raises(FedmodelError) as refused:
        reissue_superlink_certificate(broken, hosts=["localhost"])
    message = str(refused.value)
    assert message.startswith(f"--dir: {broken / 'ca.crt'} is not a PEM"), message
    assert _files(broken) == before  # nothing written


def test_the_launch_names_a_superlink_certificate_that_does_not_parse(
    tmp_path: Path,
) -> None:
    # Before, the SuperExec check read the file unchecked: cryptography's
    # ValueError, a raw traceback. It now takes the launch's one read of it.
    made = create_superlink_certificates(tmp_path, hosts=["localhost"])
    made.cert.write_text("not PEM\n")
    with pytest.raises(FedmodelError) as refused:
        superlink_command(certs_dir=tmp_path, host="0.0.0.0", port=1, database=None)
    assert str(refused.value).startswith(
        f"--certs: {made.cert} is not a PEM certificate (Unable to load PEM"
    )
    assert str(refused.value).endswith(
        "give the superlink.crt that `fedmodel certs superlink` wrote"
    )


@pytest.mark.parametrize(
    ("name", "days", "fragment"),
    [
        ("superlink.crt", (-400, -1), "expired on"),
        ("ca.crt", (-400, -1), "expired on"),
        ("superlink.crt", (1, 400), "is valid only from"),
    ],
    ids=["expired", "expired-ca", "not-yet-valid"],
)
def test_a_certificate_out_of_its_dates_stops_the_superlink_launch(
    tmp_path: Path, name: str, days: tuple[int, int], fragment: str
) -> None:
    # Before, the SuperLink started, and its own SuperExec failed every
    # handshake ("certificate has expired" in its log, again and again): no
    # run's ServerApp could start.
    create_superlink_certificates(tmp_path, hosts=["localhost"])
    sign_with_dates(tmp_path / name, days_from_now=days)
    with pytest.raises(FedmodelError) as refused:
        superlink_command(certs_dir=tmp_path, host="0.0.0.0", port=1, database=None)
    message = str(refused.value)
    assert message.startswith(f"--certs: {tmp_path / name} {fragment} ")
    fixes = {
        "superlink.crt": f"`fedmodel certs superlink --dir {tmp_path} --reissue`",
        "ca.crt": "make a new CA and certificate in a new folder",
    }
    if fragment == "expired on":
        assert fixes[name] in message, message
    else:
        assert "set the clock of this machine right" in message


def _with_names_that_do_not_parse(path: Path, ca_key: Path, *, repeated: bool) -> None:
    """Sign `path`'s certificate again with a subjectAltName that does not parse.

    Garbage under the subjectAltName's OID, or a second subjectAltName:
    cryptography builds neither, so the second is an issuerAltName whose OID
    is edited in the DER (which breaks the signature, verified by TLS only).
    """
    old = x509.load_pem_x509_certificate(path.read_bytes())
    names = x509.SubjectAlternativeName([x509.DNSName("localhost")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(old.public_key())
        .serial_number(old.serial_number)
        .not_valid_before(old.not_valid_before_utc)
        .not_valid_after(old.not_valid_after_utc)
    )
    # The DER of the OIDs 2.5.29.17 (subjectAltName) and 2.5.29.18.
    san, issuer_alt_name = bytes.fromhex("0603551d11"), bytes.fromhex("0603551d12")
    if repeated:
        builder = builder.add_extension(names, critical=False).add_extension(
            x509.UnrecognizedExtension(
                ExtensionOID.ISSUER_ALTERNATIVE_NAME, names.public_bytes()
            ),
            critical=False,
        )
    else:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(
                ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x01\x02garbage"
            ),
            critical=False,
        )
    key = load_pem_private_key(ca_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    der = builder.sign(key, hashes.SHA384()).public_bytes(Encoding.DER)
    assert der.count(issuer_alt_name) == int(repeated)
    broken = x509.load_der_x509_certificate(der.replace(issuer_alt_name, san))
    path.write_bytes(broken.public_bytes(Encoding.PEM))


@pytest.mark.parametrize("name", ["ca.crt", "superlink.crt"])
@pytest.mark.parametrize("repeated", [False, True], ids=["malformed", "repeated"])
def test_a_certificate_whose_names_do_not_parse_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, repeated: bool
) -> None:
    # Before, cryptography's ValueError (DuplicateExtension for a repeated
    # one) at the first look at a superlink.crt's names: a traceback from
    # `fedmodel superlink`, and from a re-issue after it had written the new
    # certificate; such a ca.crt passed the launch.
    made = create_superlink_certificates(tmp_path, hosts=["localhost"])
    _with_names_that_do_not_parse(tmp_path / name, made.ca_key, repeated=repeated)
    what = "holds a certificate whose extensions do not parse"
    with pytest.raises(FedmodelError, match=f"--certs: {tmp_path / name} {what}"):
        superlink_command(certs_dir=tmp_path, host="0.0.0.0", port=1, database=None)
    if name == "superlink.crt":  # a re-issue replaces it: test_superlink_reissue.py
        return
    before = _files(tmp_path)
    reissue = ["--dir", str(tmp_path), "--host", "localhost", "--reissue"]
    assert run_command(["certs", "superlink", *reissue]) == EXIT_USER_ERROR
    said = capsys.readouterr().err
    assert f"--dir: {tmp_path / name} {what} (" in said, said
    assert said.endswith(
        "give the folder `fedmodel certs superlink` wrote, which the "
        "SuperLink runs with\n"
    )
    assert _files(tmp_path) == before  # nothing written


def test_certs_superlink_reissue_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = ["--dir", str(tmp_path), "--host", "a.example"]
    assert run_command(["certs", "superlink", *folder]) == 0
    made = x509.load_pem_x509_certificate((tmp_path / "superlink.crt").read_bytes())
    assert (made.not_valid_after_utc - made.not_valid_before_utc).days == DEFAULT_DAYS
    capsys.readouterr()
    command = ["certs", "superlink", *folder, "--host", "b.example", "--reissue"]
    assert run_command(command) == 0
    out = capsys.readouterr().out
    assert "(a.example, b.example, 127.0.0.1, ::1)" in out
    assert "every site keeps its ca.crt" in out
    assert "the certificate it replaced:" in out and "could not be read" not in out
    # The folder still starts the SuperLink, at the name it added too.
    for host in ("0.0.0.0", "b.example"):
        superlink_command(certs_dir=tmp_path, host=host, port=1, database=None)
