"""Flower command lines: secure unless --insecure, checked before Flower starts."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from flwr.common.config import parse_config_args

from fedmodel.cli.deploy import add_superlink_arguments, add_supernode_arguments
from fedmodel.cli.main import run_command
from fedmodel.client.site import (
    DATA_FILE,
    DELTA,
    LABEL_COLUMN,
    LABELS_FILE,
    MAX_EPSILON,
    SITE_ID,
    STATE_DIR,
    TEXT_COLUMN,
    SiteConfig,
    site_from_node_config,
)
from fedmodel.deploy.certs import create_superlink_certificates
from fedmodel.deploy.launch import (
    INSECURE_WARNING,
    node_config_arg,
    superlink_command,
    supernode_command,
)
from fedmodel.deploy.site_keys import create_site_keys
from fedmodel.errors import FedmodelError
from fedmodel.privacy.calibration import epsilon_for
from tests.conftest import free_port

FEDMODEL = str(Path(sys.executable).parent / "fedmodel")
SITE_KEYS = (
    SITE_ID,
    DATA_FILE,
    STATE_DIR,
    MAX_EPSILON,
    DELTA,
    LABELS_FILE,
    TEXT_COLUMN,
    LABEL_COLUMN,
)


def _fedmodel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FEDMODEL, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def site(tmp_path: Path) -> SiteConfig:
    data = tmp_path / "my records.csv"
    data.write_text("text,label\nhello,a\n")
    return SiteConfig(2, data, tmp_path / "state dir", max_epsilon=3.0, delta=1e-6)


def test_superlink_runs_with_tls_and_node_authentication(tmp_path: Path) -> None:
    create_superlink_certificates(tmp_path, hosts=["localhost"])
    command = superlink_command(
        certs_dir=tmp_path, host="0.0.0.0", port=1, database=None
    )
    assert command[0] == "flower-superlink"
    assert "--enable-supernode-auth" in command
    assert "--insecure" not in command
    for option, name in [
        ("--ssl-ca-certfile", "ca.crt"),
        ("--ssl-certfile", "superlink.crt"),
        ("--ssl-keyfile", "superlink.key"),
    ]:
        assert command[command.index(option) + 1] == str(tmp_path / name)


def test_the_superlinks_own_superexec_can_verify_its_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As deployment.md: certificates for the names sites dial, the SuperLink
    # on 0.0.0.0, whose SuperExec dials 127.0.0.1 over TLS. Before, the
    # certificate named only the given hosts: every SuperExec handshake failed
    # ("IP address mismatch ... not valid for '127.0.0.1'") and no ServerApp
    # could start, while fedmodel superlink ran on.
    create_superlink_certificates(
        tmp_path / "new", hosts=["superlink.example.org", "203.0.113.10"]
    )
    for host in ("0.0.0.0", "::", "203.0.113.10", "superlink.example.org"):
        superlink_command(certs_dir=tmp_path / "new", host=host, port=1, database=None)
    with pytest.raises(FedmodelError, match="not made for 10.0.0.9, the address"):
        superlink_command(
            certs_dir=tmp_path / "new", host="10.0.0.9", port=1, database=None
        )
    # A certificate made before it named loopback is refused at once.
    monkeypatch.setattr("fedmodel.deploy.certs.LOOPBACK_HOSTS", ())
    create_superlink_certificates(tmp_path / "old", hosts=["superlink.example.org"])
    with pytest.raises(
        FedmodelError, match="not made for 127.0.0.1, .*--host 0.0.0.0"
    ) as refused:
        superlink_command(
            certs_dir=tmp_path / "old", host="0.0.0.0", port=1, database=None
        )
    # The certificate is re-issued by the folder's CA: the sites keep their
    # ca.crt (before, it said to make a new CA in a new folder).
    old = tmp_path / "old"
    assert f"`fedmodel certs superlink --dir {old} --reissue`" in str(refused.value)
    assert "so every site keeps its ca.crt" in str(refused.value)


def test_without_certificates_the_superlink_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(FedmodelError, match="--insecure"):
        superlink_command(certs_dir=None, host="h", port=1, database=None)
    with pytest.raises(FedmodelError, match="ca.crt does not exist"):
        superlink_command(certs_dir=tmp_path, host="h", port=1, database=None)
    # Files there but not what `fedmodel certs superlink` wrote: named at once.
    made = create_superlink_certificates(tmp_path / "made", hosts=["localhost"])
    for name, fragment in (
        ("superlink.crt", "superlink.crt is not a PEM certificate"),
        ("superlink.key", "superlink.key is not an unencrypted PEM private key"),
    ):
        broken = tmp_path / f"broken-{name}"
        shutil.copytree(made.ca_cert.parent, broken)
        (broken / name).write_text("not PEM\n")
        with pytest.raises(FedmodelError, match=f"--certs: .*{fragment}"):
            superlink_command(certs_dir=broken, host="h", port=1, database=None)


def test_insecure_needs_the_flag_and_warns(
    tmp_path: Path, site: SiteConfig, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fedmodel"):
        link = superlink_command(
            certs_dir=None, host="h", port=1, database=None, insecure=True
        )
        node = supernode_command(
            site,
            superlink="h:1",
            ca_cert=None,
            private_key=None,
            runtime_port=1,
            insecure=True,
        )
    assert "--insecure" in link and "--enable-supernode-auth" not in link
    assert "--insecure" in node and "--auth-supernode-private-key" not in node
    # Only the launcher's lines: a thread left by an earlier test in the same
    # process may log under another fedmodel logger meanwhile.
    launcher = [r.message for r in caplog.records if r.name == "fedmodel.deploy.launch"]
    assert launcher == [INSECURE_WARNING, INSECURE_WARNING]


def test_supernode_signs_in_with_the_sites_key(
    tmp_path: Path, site: SiteConfig
) -> None:
    create_superlink_certificates(tmp_path / "ca", hosts=["localhost"])
    keys = create_site_keys(tmp_path / "keys", name="site-2")
    command = supernode_command(
        site,
        superlink="link.example.org:9093",
        ca_cert=tmp_path / "ca" / "ca.crt",
        private_key=keys.private_key,
        runtime_port=1,
    )
    assert command[command.index("--root-certificates") + 1] == str(
        tmp_path / "ca" / "ca.crt"
    )
    assert command[command.index("--auth-supernode-private-key") + 1] == str(
        keys.private_key
    )
    with pytest.raises(FedmodelError, match="--auth-key"):
        supernode_command(
            site, superlink="h:1", ca_cert=None, private_key=None, runtime_port=1
        )


def _launch(site: SiteConfig, runtime_port: int = 1, **changes: object) -> list[str]:
    """`supernode_command` for `site` with `changes`, without TLS settings."""
    return supernode_command(
        dataclasses.replace(site, **changes),  # type: ignore[arg-type]
        superlink="h:1",
        ca_cert=None,
        private_key=None,
        runtime_port=runtime_port,
        insecure=True,
    )


def test_node_config_survives_flowers_parser(site: SiteConfig) -> None:
    parsed = parse_config_args([node_config_arg(site)])
    assert site_from_node_config(parsed) == site
    labels = site.data_file.with_name("agreed labels.txt")
    labels.write_text("a\nb\n")
    pinned = dataclasses.replace(site, labels_file=labels, columns=("text", "label"))
    parsed = parse_config_args([node_config_arg(pinned)])
    assert site_from_node_config(parsed) == pinned


def test_an_agreed_column_the_file_lacks_stops_the_supernode_launch(
    site: SiteConfig,
) -> None:
    _launch(site, columns=("text", "label"))  # the file's header: text,label
    with pytest.raises(
        FedmodelError,
        match=r"^--label-column: file .*my records.csv has no label column 'intent' "
        r"\(columns found: \['text', 'label'\]\); give --label-column one of its "
        r"columns$",
    ):
        _launch(site, columns=("text", "intent"))
    # As the files task's own check does, a name that differs in case is named.
    site.data_file.write_text("Text,label\nhello,a\n")
    with pytest.raises(FedmodelError, match=r"'Text' differs only in case"):
        _launch(site, columns=("text", "label"))


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (
            {"text-column": "note"},
            "--text-column (node config text-column) is given without "
            "--label-column (node config label-column): give both",
        ),
        (
            {"label-column": "intent"},
            "--label-column (node config label-column) is given without "
            "--text-column (node config text-column): give both",
        ),
        (
            {"text-column": "note", "label-column": " note "},
            "must name two different columns of the data-file, not 'note' and 'note'",
        ),
    ],
)
def test_agreed_columns_are_both_given_and_differ(
    site: SiteConfig, given: dict[str, str], said: str
) -> None:
    config = parse_config_args([node_config_arg(site)])
    with pytest.raises(FedmodelError, match=re.escape(said)):
        site_from_node_config({**config, **given})


def test_a_bad_labels_file_stops_the_supernode_launch(site: SiteConfig) -> None:
    twice = site.data_file.with_name("twice.txt")
    twice.write_text("hello,a\nhello,a\n")
    for labels, fragment in (
        (
            site.data_file.with_name("none.txt"),
            r"--labels-file \(node config labels-file\): .*none.txt",
        ),
        (twice, "line 2: label 'hello,a' is listed twice"),
    ):
        with pytest.raises(FedmodelError, match=fragment):
            _launch(site, labels_file=labels)


def test_a_missing_data_file_stops_the_supernode_launch(site: SiteConfig) -> None:
    site.data_file.unlink()
    # The line says what to give, not only what is missing.
    with pytest.raises(
        FedmodelError,
        match=r"--data-file \(node config data-file\): .*my records.csv does not "
        "exist or is not a file; give "
        "the path of the site's records",
    ):
        _launch(site)


def _supernode_command(
    site: SiteConfig, *extra: str, superlink: str = "127.0.0.1:1"
) -> list[str]:
    """`fedmodel supernode --insecure` for `site`, with `extra` options last."""
    command = ["supernode", "--insecure", "--superlink", superlink]
    command += ["--site-id", "2", "--max-epsilon", "3"]
    command += ["--data-file", str(site.data_file), "--state-dir", str(site.state_dir)]
    return [*command, *extra]


def _refused_by_argparse(command: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What argparse printed refusing `command`, which exits 2 before it runs."""
    with pytest.raises(SystemExit) as exited:
        run_command(command)
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "65536", "70000", "abc", "9.5", "9²"])
def test_a_port_that_is_no_port_is_refused_before_flower_starts(
    site: SiteConfig, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """Flower's own refusal would name its --port, not the option typed."""
    for command in (
        ["superlink", "--insecure", "--port", value],
        _supernode_command(site, "--runtime-port", value),
    ):
        assert (
            f"argument {command[-2]}: {value!r} is not a port number: give a whole "
            "number from 1 to 65535"
        ) in _refused_by_argparse(command, capsys)
    assert not site.state_dir.exists()


@pytest.mark.parametrize(
    "value",
    ["localhost", "host:abc", "host:0", "host:70000", "host:9²", ":9092", "a b:9092"],
)
def test_a_superlink_that_is_no_address_is_refused_before_flower_starts(
    site: SiteConfig, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """Flower refused it only after the SuperNode had started (exit 600)."""
    command = _supernode_command(site, superlink=value)
    assert (
        f"argument --superlink: {value!r} is not host:port with a port from 1 to "
        "65535, e.g. superlink.example.org:9093 or [::1]:9093"
    ) in _refused_by_argparse(command, capsys)
    assert not site.state_dir.exists()


@pytest.mark.parametrize("value", ["https://localhost:9093", "https://localhost:9093/"])
def test_a_superlink_given_as_a_url_is_refused_before_flower_starts(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """The SuperLink logs its address as https://...; Flower takes no prefix.

    Before, the launch took it, warned that no SuperLink answered there yet
    (a name lookup of 'https://localhost' failed), and the SuperNode started
    and then exited with Flower's exit code 600. Parsed alone, so that a
    launch that took it would not start Flower from the test.
    """
    parser = argparse.ArgumentParser()
    add_supernode_arguments(parser)
    typed = ["--superlink", value, "--site-id", "1", "--max-epsilon", "1"]
    typed += ["--data-file", "d.csv", "--state-dir", "s"]
    with pytest.raises(SystemExit):
        parser.parse_args(typed)
    assert (
        f"argument --superlink: {value!r} has a URL prefix (https://), which "
        "Flower does not take: give host:port alone, e.g. localhost:9093"
    ) in capsys.readouterr().err


@pytest.mark.parametrize(
    "value", ["0.0.0.0:9093", "https://0.0.0.0", "link.org:9093", "[::]:9093"]
)
def test_a_superlink_host_with_a_port_or_url_prefix_is_refused(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """Before, the launch said the certificate was not made for '0.0.0.0:9093'.

    Its fix, re-issuing the certificate for that "host", could not help: the
    port is --port's. Parsed alone, as a launch that took it could start Flower.
    """
    parser = argparse.ArgumentParser()
    add_superlink_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--host", value])
    assert (
        f"argument --host: {value!r} is not a host alone: give the address or name "
        "to listen on without a URL prefix or a port (the port is --port), e.g. "
        "0.0.0.0"
    ) in capsys.readouterr().err


@pytest.mark.parametrize("value", ["10.0.0.5:9092", "[::1]:9092", "link.org:1"])
def test_superlink_addresses_flower_takes_are_taken(value: str) -> None:
    parser = argparse.ArgumentParser()
    add_supernode_arguments(parser)
    typed = ["--superlink", value, "--site-id", "1", "--max-epsilon", "1"]
    typed += ["--data-file", "d.csv", "--state-dir", "s"]
    assert parser.parse_args(typed).superlink == value


def test_a_port_in_use_stops_the_launch(site: SiteConfig) -> None:
    """A second SuperNode on one runtime port would end in Flower's traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            FedmodelError,
            match=f"--runtime-port {port}: another process already listens on "
            f"127.0.0.1:{port}; every SuperNode on a machine needs a "
            "--runtime-port of its own",
        ):
            _launch(site, runtime_port=port)
        with pytest.raises(FedmodelError, match=f"--port {port}: another process"):
            superlink_command(
                certs_dir=None, host="127.0.0.1", port=port, database=None
            )


def test_a_file_no_round_could_use_stops_the_supernode_launch(
    site: SiteConfig,
) -> None:
    for text, delta, fragment in (
        ("text,label\n", None, r"--data-file \(node config data-file\): .*records"),
        (
            "text,label\nhello,a\nbye,b\n",
            0.5,
            r"--delta \(node config delta\): 0.5 is not below 1/n = 1/2",
        ),
    ):
        site.data_file.write_text(text)
        with pytest.raises(FedmodelError, match=fragment):
            _launch(site, delta=delta)


def _said_at_launch(
    site: SiteConfig,
    caplog: pytest.LogCaptureFixture,
    key: str,
    values: tuple[float | None, ...],
) -> list[str]:
    """The launch's warnings (but --insecure's) as `site`'s `key` takes `values`.

    The site starts with each all the same.
    """
    launcher = ("fedmodel.deploy.launch", "fedmodel.deploy.launch_files")
    with caplog.at_level(logging.WARNING, logger="fedmodel.deploy"):
        for value in values:
            assert _launch(site, **{key: value})[0] == "flower-supernode"
    return [
        r.message
        for r in caplog.records
        if r.name in launcher and r.message != INSECURE_WARNING
    ]


def test_a_weak_delta_is_said_at_launch_naming_the_sites_option(
    site: SiteConfig, caplog: pytest.LogCaptureFixture
) -> None:
    # Two records: without --delta the round would take 1/(10 n) = 0.05. The
    # operator reads it at launch, named as the option they set, and the site
    # starts all the same (a weak delta is said, never changed).
    site.data_file.write_text("text,label\nhello,a\nbye,b\n")
    said = _said_at_launch(site, caplog, "delta", (None, 0.002, 1e-3))
    assert said == [
        f"site 2 (2 records): delta {delta} is above 0.001, so its epsilon may "
        f"fail to hold with probability up to {delta}. For a meaningful guarantee "
        "set --delta (node config delta) to 1e-5: a fixed delta must be below "
        "1/n, n the site's records"
        for delta in ("0.05", "0.002")
    ]


def test_a_cap_below_the_rules_budgets_is_said_at_launch(
    site: SiteConfig, caplog: pytest.LogCaptureFixture
) -> None:
    # Once, on the operator's console; each round's log says the cap wins.
    said = _said_at_launch(site, caplog, "max_epsilon", (0.5, 1.0, 3.0))
    assert said == [
        "site 2: --max-epsilon (node config max-epsilon) 0.5 is below 1, the "
        "smallest budget the budget rule was measured at (docs/strict-budgets.md): "
        "in a DP-SGD head run it caps, the settings the server's config leaves to "
        "the rule take the values measured at 1, and the accuracy they reach at "
        "0.5 is unknown"
    ]


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--site-id", "-1", "--site-id (node config site-id): -1 must be an integer"),
        ("--max-epsilon", "0", "--max-epsilon (node config max-epsilon): 0.0 must"),
        ("--max-epsilon", "nan", "--max-epsilon (node config max-epsilon): nan"),
        ("--delta", "1.5", "--delta (node config delta): 1.5 must be below 1"),
    ],
)
def test_a_bad_supernode_option_is_named_as_typed(
    site: SiteConfig,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    said: str,
) -> None:
    """The error names the option typed, and the node-config key it fills."""
    arguments = {
        "--superlink": "127.0.0.1:1",
        "--site-id": "2",
        "--max-epsilon": "3",
        "--data-file": str(site.data_file),
        "--state-dir": str(site.state_dir),
        option: value,
    }
    code = run_command(
        ["supernode", "--insecure", *[x for pair in arguments.items() for x in pair]]
    )
    assert code == 2 and said in capsys.readouterr().err
    assert not site.state_dir.exists()
    # Each node-config key is filled from the option of its name (site_setting).
    parser = argparse.ArgumentParser()
    add_supernode_arguments(parser)
    typed = ["--superlink", "h:1", *[x for key in SITE_KEYS for x in (f"--{key}", "1")]]
    parsed = vars(parser.parse_args(typed))
    assert all(parsed[key.replace("-", "_")] is not None for key in SITE_KEYS)


def test_a_path_flower_cannot_carry_is_named_by_its_option(
    site: SiteConfig,
) -> None:
    quoted = site.state_dir.with_name('state "a"')
    with pytest.raises(FedmodelError, match=r'^--state-dir .*state "a".* double q'):
        node_config_arg(dataclasses.replace(site, state_dir=quoted))


def test_a_state_dir_that_is_a_file_stops_the_supernode_launch(
    site: SiteConfig,
) -> None:
    for state_dir in (site.data_file, site.data_file / "state"):
        with pytest.raises(FedmodelError, match=f"--state-dir: .*{state_dir}.*a file"):
            _launch(site, state_dir=state_dir)


def test_a_ca_cert_or_key_that_does_not_parse_stops_the_supernode_launch(
    tmp_path: Path, site: SiteConfig
) -> None:
    made = create_superlink_certificates(tmp_path / "ca", hosts=["localhost"])
    keys = create_site_keys(tmp_path / "keys", name="site-2")
    for ca_cert, key, option in (
        (site.data_file, keys.private_key, "--ca-cert"),
        (made.ca_cert, keys.public_key, "--auth-key"),
    ):
        with pytest.raises(FedmodelError, match=f"{option}: "):
            supernode_command(
                site,
                superlink="h:1",
                ca_cert=ca_cert,
                private_key=key,
                runtime_port=1,
            )
    # The command line, too: exit 2 at once, nothing made, no Flower process.
    done = _fedmodel(
        "supernode",
        *("--superlink", "127.0.0.1:1", "--site-id", "2", "--max-epsilon", "3"),
        *("--data-file", str(site.data_file), "--state-dir", str(site.state_dir)),
        *("--ca-cert", str(site.data_file), "--auth-key", str(keys.private_key)),
        *("--runtime-port", str(free_port())),
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"--ca-cert: {site.data_file} is not a PEM certificate" in done.stderr
    assert not site.state_dir.exists()


def test_a_database_whose_folder_is_missing_stops_the_superlink(
    tmp_path: Path,
) -> None:
    for database, fragment in (
        (tmp_path / "nope" / "state.db", "the folder .*nope of .*state.db does not"),
        (tmp_path, ".* is a folder; give a file in it"),
    ):
        with pytest.raises(FedmodelError, match=f"--database: {fragment}"):
            superlink_command(
                certs_dir=None, host="h", port=1, database=database, insecure=True
            )
    database = tmp_path / "state.db"
    command = superlink_command(
        certs_dir=None, host="h", port=1, database=database, insecure=True
    )
    assert command[command.index("--database") + 1] == str(database)


def test_cli_errors_exit_2_without_a_traceback(tmp_path: Path) -> None:
    done = _fedmodel("superlink", "--certs", str(tmp_path), "--port", str(free_port()))
    assert done.returncode == 2
    assert "ca.crt does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def _ledger_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    code = run_command(["ledger", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_ledger_reset_needs_yes_and_archives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spent = epsilon_for([(1.1, 0.01, 100)], delta=1e-5, accountant="rdp")
    ledger = {
        "format": "fedmodel-privacy-ledger",
        "version": 1,
        "client_id": "0",
        "accountant": "rdp",
        "delta": 1e-5,
        "target_epsilon": 3.0,
        "noise_multiplier": 1.1,
        "sample_rate": 0.01,
        "data_fingerprint": "abc",
        "budget_exhausted": True,
        "history": [[1.1, 0.01, 100]],
        # The epsilon its history spends: a ledger that says otherwise is refused.
        "rounds": [{"round": 1, "steps": 100, "epsilon": spent}],
    }
    path = tmp_path / "privacy_ledger.json"
    path.write_text(json.dumps(ledger))

    state = str(tmp_path)
    code, out, _ = _ledger_command(monkeypatch, capsys, "show", "--state-dir", state)
    # The limit a site met is its last run's, not necessarily its own cap.
    assert code == 0 and out == (
        f"{path}: client 0, epsilon {spent:.4f} spent at delta 1e-05 in 1 round; "
        "its last run allowed 3 (the server's target, or the site's --max-epsilon "
        "where lower), and a round there found the budget exhausted\n"
    )
    code, _, err = _ledger_command(monkeypatch, capsys, "reset", "--state-dir", state)
    assert code == 2 and "--yes" in err
    assert json.loads(path.read_text()) == ledger

    reset = ("reset", "--state-dir", state, "--yes")
    code, out, _ = _ledger_command(monkeypatch, capsys, *reset)
    assert code == 0 and "archived" in out
    (archived,) = tmp_path.glob("privacy_ledger.reset-*.json")
    assert json.loads(archived.read_text()) == ledger
    assert not path.exists()

    # Reset already, no round since: `show` and `reset` describe the folder in
    # the same words (ledger_reset.reset_and_not_charged's). `show` exits 0
    # (it is the site's state), `reset` refuses (there is nothing to reset);
    # neither calls it a site no round has charged, nor the wrong folder.
    held = (
        f"{tmp_path}: nothing spent since its operator reset the ledger (1 "
        f"archived, the latest {archived.name}); the next round that charges "
        "this site starts the new budget"
    )
    code, out, _ = _ledger_command(monkeypatch, capsys, "show", "--state-dir", state)
    assert code == 0 and out == f"{held}\n"
    for command in (reset, reset[:-1]):
        code, _, err = _ledger_command(monkeypatch, capsys, *command)
        assert code == 2 and f"{held}, so there is nothing to reset" in err
        assert "no round has charged this site yet" not in err


def test_ledger_show_says_why_a_folder_holds_no_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new site's state folder is not called the wrong folder; a missing one is."""
    fresh = str(tmp_path)
    code, _, err = _ledger_command(monkeypatch, capsys, "show", "--state-dir", fresh)
    assert code == 2 and "no round has charged this site yet" in err
    missing = str(tmp_path / "nope")
    code, _, err = _ledger_command(monkeypatch, capsys, "show", "--state-dir", missing)
    assert code == 2 and f"--state-dir {missing}: no such folder" in err


def test_ledger_given_a_run_folder_names_its_clients_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A simulation keeps each client's ledger in RUN/clients/client-<i>.
    for client in range(2):
        folder = tmp_path / "clients" / f"client-{client}"
        folder.mkdir(parents=True)
        (folder / "privacy_ledger.json").write_text("{}")
    run = str(tmp_path)
    for command in (("show",), ("reset", "--yes")):
        code, _, err = _ledger_command(
            monkeypatch, capsys, *command, "--state-dir", run
        )
        assert code == 2 and f"--state-dir {run} is a simulation's run folder" in err
        assert f"{tmp_path}/clients/client-<i> (client-0, client-1)" in err
    assert (tmp_path / "clients" / "client-0" / "privacy_ledger.json").is_file()


def test_ledger_reset_refuses_a_simulated_clients_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A simulated client trains on the same records all run: a new budget
    # would count them again from 0 when the run resumes.
    folder = tmp_path / "clients" / "client-0"
    folder.mkdir(parents=True)
    ledger = folder / "privacy_ledger.json"
    ledger.write_text("{}")
    (tmp_path / "resolved_config.yaml").write_text("seed: 0\n")
    for command in (("reset",), ("reset", "--yes")):
        code, _, err = _ledger_command(
            monkeypatch, capsys, *command, "--state-dir", str(folder)
        )
        assert code == 2
        assert f"--state-dir {folder} is a simulated client's folder in the run" in err
    assert ledger.read_text() == "{}" and not list(folder.glob("*.reset-*"))
    # Its unusable ledger's way out is the new run, not the reset just refused
    # (`ledger show` named `ledger reset --state-dir` this folder).
    code, _, err = _ledger_command(
        monkeypatch, capsys, "show", "--state-dir", str(folder)
    )
    assert code == 2 and f"privacy ledger {ledger} is unusable" in err
    assert "ledger reset" not in err
    assert "or start a new run in a folder of its own for new budgets" in err
    # A site's folder is one the reset takes: there its message names it.
    site = tmp_path / "site"
    site.mkdir()
    (site / "privacy_ledger.json").write_text("{}")
    code, _, err = _ledger_command(
        monkeypatch, capsys, "show", "--state-dir", str(site)
    )
    assert code == 2 and f"`fedmodel ledger reset --state-dir {site} --yes`" in err
    code, out, _ = _ledger_command(
        monkeypatch, capsys, "reset", "--yes", "--state-dir", str(site)
    )
    assert code == 0 and "archived" in out


def test_ledger_reset_refuses_a_simulated_clients_folder_named_from_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--state-dir client-0` from RUN/clients, or a link to the folder, names
    # the same client: its parent as written ('.', the link's) tells nothing.
    folder = tmp_path / "run" / "clients" / "client-0"
    folder.mkdir(parents=True)
    ledger = folder / "privacy_ledger.json"
    ledger.write_text("{}")
    (tmp_path / "run" / "resolved_config.yaml").write_text("seed: 0\n")
    (tmp_path / "link").symlink_to(folder)
    monkeypatch.chdir(folder.parent)
    for state_dir in ("client-0", str(tmp_path / "link")):
        code, _, err = _ledger_command(
            monkeypatch, capsys, "reset", "--yes", "--state-dir", state_dir
        )
        assert code == 2, err
        assert f"in the run {tmp_path.resolve() / 'run'}:" in err
    assert ledger.read_text() == "{}"
