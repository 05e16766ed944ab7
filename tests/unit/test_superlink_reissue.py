"""`fedmodel certs superlink --reissue` when the old superlink.crt cannot be read.

A re-issue needs the folder's CA and `superlink.key`; the old certificate
gave only a copy to keep and names to compare. Each case goes through the
command line, as an operator whose SuperLink no longer starts would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from fedmodel.cli.errors import EXIT_USER_ERROR
from fedmodel.cli.main import run_command
from fedmodel.deploy.certs import create_superlink_certificates
from fedmodel.deploy.launch import superlink_command
from fedmodel.errors import FedmodelError
from tests.unit.test_certs import _files, _with_names_that_do_not_parse

PEM_BEGIN, PEM_END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
# How the old certificate is broken, and the reason the re-issue then prints.
BREAKS = {
    "deleted": "cannot be read (No such file or directory)",
    "truncated": "is not a PEM certificate (Unable to load PEM",
    "later-block": "is not a PEM certificate (error parsing asn1 value",
    "malformed": "holds a certificate whose extensions do not parse (error parsing",
    "repeated": "holds a certificate whose extensions do not parse (Duplicate",
}


def _break(path: Path, ca_key: Path, how: str) -> None:
    """Break the certificate file `path` as `BREAKS[how]` says."""
    if how == "deleted":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif how == "later-block":  # the launch refuses it: TLS reads every block
        path.write_text(f"{path.read_text()}{PEM_BEGIN}\nAAAA\n{PEM_END}\n")
    else:
        _with_names_that_do_not_parse(path, ca_key, repeated=how == "repeated")


def _reissue(folder: Path, host: str) -> int:
    """`fedmodel certs superlink --dir folder --host host --reissue`'s exit code."""
    return run_command(
        ["certs", "superlink", "--dir", str(folder), "--host", host, "--reissue"]
    )


@pytest.mark.parametrize("how", list(BREAKS))
def test_a_reissue_replaces_an_old_certificate_that_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    # Before, refused (exit 2, "... give the folder `fedmodel certs superlink`
    # wrote"), which the operator no longer had: only a new CA was left, whose
    # ca.crt every site then needed.
    made = create_superlink_certificates(tmp_path, hosts=["a.example"])
    _break(made.cert, made.ca_key, how)
    with pytest.raises(FedmodelError, match=f"--certs: {made.cert} "):
        superlink_command(certs_dir=tmp_path, host="0.0.0.0", port=1, database=None)
    before = _files(tmp_path)
    assert _reissue(tmp_path, "b.example") == 0
    out = capsys.readouterr().out
    after = _files(tmp_path)
    for name in ("ca.crt", "ca.key", "superlink.key"):  # read, never written
        assert after[name] == before[name]
    ca = x509.load_pem_x509_certificate(before["ca.crt"])
    cert = x509.load_pem_x509_certificate(after["superlink.crt"])
    cert.verify_directly_issued_by(ca)  # the ca.crt the sites hold
    key = load_pem_private_key(before["superlink.key"], None)
    assert cert.public_key() == key.public_key()
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == ["b.example"]
    # Kept byte for byte, unparsed; a missing one leaves nothing to keep.
    replaced = sorted(tmp_path.glob("superlink.replaced-*.crt"))
    kept = [] if how == "deleted" else [before["superlink.crt"]]
    assert [path.read_bytes() for path in replaced] == kept
    assert set(after) == {"superlink.crt", *before, *(p.name for p in replaced)}
    assert ("the certificate it replaced:" in out) == bool(kept)
    assert f"SuperLink certificate re-issued:  {made.cert} (b.example, " in out
    unread = "the old certificate could not be read, so the names it held were not "
    assert f"{unread}compared: {made.cert} {BREAKS[how]}" in out, out
    assert "no longer holds" not in out
    superlink_command(certs_dir=tmp_path, host="b.example", port=1, database=None)


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_a_reissue_without_a_readable_certificate_still_checks_the_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    other = create_superlink_certificates(tmp_path / "other", hosts=["a.example"])
    for number, (name, damage, said) in enumerate(
        [
            ("ca.key", other.ca_key.read_bytes(), "ca.key is not the key of ca.crt"),
            ("ca.key", b"not PEM\n", "ca.key is not an unencrypted PEM private key"),
            ("superlink.key", None, "superlink.key cannot be read (No such file"),
        ]
    ):
        folder = tmp_path / str(number)
        made = create_superlink_certificates(folder, hosts=["a.example"])
        _break(made.cert, made.ca_key, how)
        (folder / name).unlink()
        if damage is not None:
            (folder / name).write_bytes(damage)
        before = _files(folder)
        assert _reissue(folder, "b.example") == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert str(folder) in err and said in err, err
        assert _files(folder) == before  # nothing written
