"""A deployed site: node config, its own cap, its own records, a ledger that lasts.

The ClientApp's real train handler is called with the messages a SuperNode
would hand it; the site's ledger file is checked directly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, Metadata, RecordDict
from transformers import PreTrainedTokenizerBase

from fedmodel import __version__
from fedmodel.client.site import (
    RunRefusal,
    SiteConfig,
    capped_settings,
    check_site_run_config,
    site_from_node_config,
)
from fedmodel.client.site_agreement import (
    agreed_labels,
    check_site_columns,
    check_site_labels,
)
from fedmodel.client.site_data import load_site_records
from fedmodel.client.site_delta import check_site_delta
from fedmodel.config import (
    RunSettings,
    from_run_config,
    settings_from_dict,
    to_run_config,
)
from fedmodel.config.budget_rule import RULE_KEYS
from fedmodel.config.deployment import check_deployment_settings
from fedmodel.config.wording import decimals_up
from fedmodel.errors import FedmodelError
from fedmodel.federation import client_app
from fedmodel.federation.messages import (
    ARRAYS_KEY,
    CLIENT_CRASHED,
    CLIENT_REFUSED,
    CLIENT_REFUSED_RUN,
    EXHAUSTED_KEY,
    METRICS_KEY,
    VERSION_KEY,
)
from fedmodel.model.finetune import prepare_for_finetuning
from fedmodel.model.head import trainable_state
from fedmodel.model.load import build_classifier, load_tokenizer
from fedmodel.privacy.client_plan import choose_delta
from fedmodel.privacy.figure_keys import ROUND_STEPS_KEY
from fedmodel.privacy.ledger_holding import ledger_regression
from fedmodel.privacy.ledger_reset import archive_ledger, ledger_status
from fedmodel.privacy.reset_overlap import spent_before_reset
from tests.conftest import small_config

pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")


# Every metric a site's train reply holds: its figures, nothing of its records.
SITE_REPLY_METRICS = frozenset(
    {
        "num-examples",
        "client-id",
        EXHAUSTED_KEY,
        "epsilon",
        "delta",
        "noise-multiplier",
        "sample-rate",
        "steps",
        ROUND_STEPS_KEY,
        "ledger-resets",
    }
)


def deployment_settings(labels: list[str], *overrides: str) -> RunSettings:
    config = small_config(
        "federation=deployment",
        "task=files",
        "task.text_column=note",
        "task.label_column=intent",
        "task.max_length=16",
        "task.test_file=server-test.csv",
        "num_clients=2",
        "num_rounds=2",
        *overrides,
    )
    config["task"]["labels"] = labels
    return settings_from_dict(config)


def node_config(site_file: Path, state_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "site-id": 3,
        "data-file": str(site_file),
        "state-dir": str(state_dir),
        "max-epsilon": 1.0,
        **extra,
    }


def test_a_node_without_a_data_file_is_a_simulated_client() -> None:
    assert site_from_node_config({"partition-id": 0, "num-partitions": 2}) is None
    with pytest.raises(FedmodelError, match="has no data-file"):
        site_from_node_config({})


def test_a_site_reads_its_node_config(tmp_path: Path) -> None:
    site = site_from_node_config(
        node_config(tmp_path / "a.csv", tmp_path / "s", delta=1e-6)
    )
    assert site == SiteConfig(
        site_id=3,
        data_file=tmp_path / "a.csv",
        state_dir=tmp_path / "s",
        max_epsilon=1.0,
        delta=1e-6,
    )


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"max-epsilon": None}, "not ['max-epsilon']"),
        ({"state-dir": None, "site-id": None}, "['site-id', 'state-dir']"),
        # A bad value is named as the operator set it: `fedmodel supernode`'s
        # option, or the node-config key of Flower's own --node-config.
        ({"site-id": -1}, "--site-id (node config site-id): -1 must be an integer"),
        ({"site-id": "a"}, "--site-id (node config site-id): 'a'"),
        ({"max-epsilon": 0}, "--max-epsilon (node config max-epsilon): 0 must be"),
        ({"max-epsilon": math.inf}, "--max-epsilon (node config max-epsilon): inf"),
        ({"max-epsilon": "3"}, "--max-epsilon (node config max-epsilon): '3' must"),
        ({"delta": 1.5}, "--delta (node config delta): 1.5 must be below 1"),
    ],
)
def test_bad_node_config_names_the_key(
    tmp_path: Path, change: dict[str, Any], fragment: str
) -> None:
    config = node_config(tmp_path / "a.csv", tmp_path)
    for key, value in change.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    with pytest.raises(FedmodelError, match=re.escape(fragment)):
        site_from_node_config(config)


def test_the_sites_cap_wins_over_the_servers_target(tmp_path: Path) -> None:
    settings = deployment_settings(["a"], "privacy.target_epsilon=8")
    strict = SiteConfig(3, tmp_path, tmp_path, max_epsilon=2.0, delta=1e-7)
    capped = capped_settings(settings, strict)
    assert capped.privacy.target_epsilon == 2.0
    assert capped.privacy.target_delta == 1e-7
    loose = dataclasses.replace(strict, max_epsilon=50.0, delta=None)
    assert capped_settings(settings, loose).privacy.target_epsilon == 8.0
    assert capped_settings(settings, loose).privacy.target_delta is None


def test_under_its_cap_a_site_trains_with_the_budget_rules_settings_for_it(
    tmp_path: Path,
) -> None:
    # The rule fills these (the test config sets them): epsilon 8's row is
    # learning rate 8 over 12 epochs, epsilon 1's is 2 over 6.
    rule = ("finetune.batch_size=null", "finetune.local_epochs=null")
    settings = deployment_settings(["a"], "privacy.target_epsilon=8", *rule)
    assert (settings.finetune.learning_rate, settings.finetune.local_epochs) == (8, 12)
    strict = SiteConfig(3, tmp_path, tmp_path, max_epsilon=1.0)
    capped = capped_settings(settings, strict).finetune
    assert (capped.learning_rate, capped.local_epochs, capped.batch_size) == (2, 6, 512)
    loose = dataclasses.replace(strict, max_epsilon=50.0)
    assert capped_settings(settings, loose).finetune == settings.finetune
    # A value someone set is theirs, whatever the cap.
    chosen = deployment_settings(
        ["a"], "privacy.target_epsilon=8", *rule, "finetune.learning_rate=0.3"
    )
    capped = capped_settings(chosen, strict).finetune
    assert (capped.learning_rate, capped.local_epochs) == (0.3, 6)


def test_a_capped_site_keeps_a_value_set_to_the_rules_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Epsilon 8's row is learning rate 8 over 12 epochs; the user sets 8 itself
    # and leaves the epochs to the rule.
    settings = deployment_settings(
        ["a"],
        "privacy.target_epsilon=8",
        "finetune.local_epochs=null",
        "finetune.learning_rate=8",
    )
    # What the site builds from the round's config: the resolved values, no null.
    sent = to_run_config(dataclasses.asdict(settings))
    received = settings_from_dict(from_run_config(sent))
    assert (received.finetune.learning_rate, received.finetune.local_epochs) == (8, 12)
    strict = SiteConfig(3, tmp_path, tmp_path, max_epsilon=1.0)
    with caplog.at_level(logging.INFO, logger="fedmodel.client.site"):
        capped = capped_settings(received, strict).finetune
    assert (capped.learning_rate, capped.local_epochs) == (8, 6)
    assert "replace those for the server's target: local_epochs 6" in caplog.text
    assert "learning_rate" not in caplog.text


def test_a_site_refuses_a_round_config_without_the_rules_keys(
    tmp_path: Path, site_file: Path, bank_rows: tuple[pd.DataFrame, list[str]]
) -> None:
    # It cannot tell the rule's values from the user's, so it does not guess.
    settings = deployment_settings(bank_rows[1], "privacy.target_epsilon=8")
    state = tmp_path / "state"
    message = _train_message(settings, 1)
    del message.content["config"]["budget-rule-keys"]
    reply = client_app.train(message, _site_context(node_config(site_file, state)))
    assert reply.has_error() and reply.error.code == CLIENT_REFUSED
    assert "client 3: site 3 refuses a run-config without budget_rule_keys" in (
        reply.error.reason
    )
    assert not (state / "privacy_ledger.json").exists()


def test_a_site_keeps_its_own_delta_whatever_the_server_asks(tmp_path: Path) -> None:
    # A delta just under 1/n would weaken every epsilon the site's cap allows.
    settings = deployment_settings(["a"], "privacy.target_delta=0.009")
    own = SiteConfig(3, tmp_path, tmp_path, max_epsilon=2.0, delta=1e-7)
    assert capped_settings(settings, own).privacy.target_delta == 1e-7
    default = dataclasses.replace(own, delta=None)  # 1 / (10 n) of its records
    assert capped_settings(settings, default).privacy.target_delta is None


@pytest.mark.parametrize("mode", ["off", "central"])
def test_a_site_refuses_a_round_without_dp_sgd_at_the_site(
    tmp_path: Path,
    site_file: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    mode: str,
) -> None:
    # privacy=central gives DP, but by noise the server adds after it has
    # received the site's unnoised update: the site's cap would not hold.
    settings = deployment_settings(bank_rows[1], f"privacy={mode}")
    state = tmp_path / "state"
    context = _site_context(node_config(site_file, state))
    reply = client_app.train(_train_message(settings, 1), context)
    # A resume keeps the run's privacy mode: its own code, so the server's
    # stop line advises a new run (before: CLIENT_REFUSED, "continue with
    # resume=true", which the site refused the same way).
    assert reply.has_error() and reply.error.code == CLIENT_REFUSED_RUN
    # Named as the server's user picks it: it said privacy.mode='central'.
    refused = rf"refuses a round without DP-SGD at the site \(privacy={mode}\)"
    assert re.search(refused, reply.error.reason), reply.error.reason
    assert not (state / "privacy_ledger.json").exists()


def test_a_bad_row_is_named_in_the_sites_log_but_not_to_the_server(
    tmp_path: Path,
    site_file: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    names = bank_rows[1]
    first = str(bank_rows[0]["intent"].iloc[0])
    settings = deployment_settings([n for n in names if n != first])
    site = site_from_node_config(node_config(site_file, tmp_path))
    assert site is not None
    with pytest.raises(FedmodelError, match="cannot train on its data file") as raised:
        load_site_records(settings, site)
    assert first not in str(raised.value) and "row" not in str(raised.value)
    assert re.search(
        rf"--data-file \(node config data-file\): file .*, row 1 .*label '{first}' "
        "is not one",
        caplog.text,
    )
    no_labels = dataclasses.replace(
        settings, task=dataclasses.replace(settings.task, labels=None)
    )
    # A resume keeps task.labels: the server's stop line advises a new run.
    with pytest.raises(RunRefusal, match="no task.labels"):
        load_site_records(no_labels, site)


@pytest.mark.parametrize(
    ("line", "cause"),
    [
        # A lone surrogate: the codec's message quotes the character and where
        # in the record it sits.
        ('{"note": "chest pain \\ud800 since tuesday", "intent": "a"}', "surrogates"),
        # A label of 5,000 digits: json's message gives its length.
        ('{"note": "chest pain", "intent": ' + "9" * 5000 + "}", "5000 digits"),
    ],
)
def test_a_readers_own_error_stays_in_the_sites_log_too(
    tmp_path: Path, line: str, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "site.jsonl"
    path.write_text(line + "\n")
    site = site_from_node_config(node_config(path, tmp_path))
    assert site is not None
    with pytest.raises(FedmodelError) as raised:
        load_site_records(deployment_settings(["a", "b"]), site)
    assert str(raised.value) == (
        "site 3 cannot train on its data file; the site's operator finds the "
        "reason in its SuperNode's log"
    )
    assert cause in caplog.text


def test_a_sites_unexpected_error_sends_its_type_and_not_its_message(
    tmp_path: Path,
    site_file: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Any exception's text may quote a record; the server learns the type.
    def crash(*args: object, **kwargs: object) -> None:
        raise ValueError("record 7 reads 'chest pain since tuesday'")

    monkeypatch.setattr(client_app, "capped_settings", crash)
    # The site's log handlers would take the line from caplog's.
    monkeypatch.setattr(client_app, "setup_logging", lambda: None)
    message = _train_message(deployment_settings(bank_rows[1]), 1)
    reply = client_app.train(message, _site_context(node_config(site_file, tmp_path)))
    assert reply.has_error() and reply.error.code == CLIENT_CRASHED
    assert reply.error.reason == (
        "client 3: ValueError (the site's log has its message)"
    )
    assert "chest pain since tuesday" in caplog.text


def test_a_sites_label_names_are_composed_as_the_servers_are(
    tmp_path: Path, bank_rows: tuple[pd.DataFrame, list[str]]
) -> None:
    # The run-config's `cafe\u0301` (NFD) and the file's `caf\u00e9` (NFC) are one
    # label; the site keeps it in the composed form, as the server does.
    frame = bank_rows[0].head(4).assign(intent=["caf\u00e9", "tea"] * 2)
    path = tmp_path / "site.csv"
    frame.to_csv(path, index=False)
    settings = deployment_settings(["cafe\u0301", "tea"])
    site = site_from_node_config(node_config(path, tmp_path))
    assert site is not None
    records = load_site_records(settings, site)
    assert records.label_names == ("caf\u00e9", "tea")
    assert list(records.split["label"]) == [0, 1, 0, 1]


def _train_message(
    settings: RunSettings,
    round_number: int,
    *,
    version: str = __version__,
    extra: dict[str, str] | None = None,
) -> Message:
    model = build_classifier(
        settings.model, label_names=tuple(settings.task.labels or ()), seed=0
    )
    weights = trainable_state(prepare_for_finetuning(model, settings.finetune))
    config = dict(to_run_config(dataclasses.asdict(settings)))
    config["server-round"] = round_number
    config[VERSION_KEY] = version
    config.update(extra or {})
    content = RecordDict(
        {ARRAYS_KEY: ArrayRecord(weights), "config": ConfigRecord(config)}
    )
    # What the SuperNode hands the ClientApp: a message from the SuperLink.
    metadata = Metadata(
        run_id=1,
        message_id=f"train-{round_number}",
        src_node_id=0,
        dst_node_id=7,
        reply_to_message_id="",
        group_id=str(round_number),
        created_at=time.time(),
        ttl=3600.0,
        message_type="train",
    )
    return Message(content=content, metadata=metadata)


def _site_context(config: dict[str, Any]) -> Context:
    """What the SuperNode gives the ClientApp: the site's node config."""
    return Context(
        run_id=1, node_id=7, node_config=config, state=RecordDict(), run_config={}
    )


def _site_round(
    settings: RunSettings, config: dict[str, Any], round_number: int
) -> dict[str, float]:
    reply = client_app.train(
        _train_message(settings, round_number), _site_context(config)
    )
    return dict(reply.content.metric_records[METRICS_KEY])  # type: ignore[arg-type]


def test_a_sites_budget_survives_later_runs_until_its_operator_resets_it(
    tmp_path: Path,
    site_file: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(client_app, "setup_logging", lambda: None)  # for caplog
    settings = deployment_settings(bank_rows[1], "privacy.target_epsilon=8")
    state = tmp_path / "state"
    config = node_config(site_file, state, **{"max-epsilon": 1.0})

    # Run 1: two rounds, calibrated to the site's cap (1), not the server's 8.
    first = [_site_round(settings, config, r)["epsilon"] for r in (1, 2)]
    assert 0 < first[0] < first[1] <= 1.0 + 1e-9
    ledger_file = state / "privacy_ledger.json"
    spent = json.loads(ledger_file.read_text())
    assert spent["target_epsilon"] == 1.0 and spent["client_id"] == "3"

    # Run 2 on the same site and data, even with a server asking for more:
    # nothing more is spent, the reply says the budget is exhausted.
    greedy = deployment_settings(bank_rows[1], "privacy.target_epsilon=100")
    caplog.clear()
    figures = _site_round(greedy, config, 1)
    assert figures[EXHAUSTED_KEY] == 1
    # The site's line names the client once, as the ledger's refusal does.
    refusals = [m for m in caplog.messages if "cannot take part" in m]
    assert refusals and refusals[0].startswith("client '3' cannot take part in")
    assert json.loads(ledger_file.read_text())["history"] == spent["history"]
    assert ledger_status(state).epsilon == pytest.approx(first[1])

    # Only an explicit reset starts a new budget; the old ledger is archived.
    _, archived = archive_ledger(state)
    assert json.loads(archived.read_text())["history"] == spent["history"]
    assert not ledger_file.exists()
    caplog.clear()
    again = _site_round(settings, config, 1)
    assert again[EXHAUSTED_KEY] == 0 and 0 < again["epsilon"] <= 1.0 + 1e-9
    # On the same records the new budget adds to the old, and the site's log
    # says so once, where the new ledger opens; other records are not named.
    assert (
        f"{state}: of its training records, 120 of 120 were already charged "
        f"epsilon {decimals_up(first[1], 4)} in 1 archived ledger (the latest "
        f"{archived.name}); the new budget starts at 0, but for those records "
        "the epsilons add up"
    ) in caplog.text
    other = {"fingerprint": "other records", "records": 3, "digests": None}
    assert spent_before_reset(state, **other) == []
    # An archive edited since cannot say what it spent: no line, and the
    # round is not refused for it.
    tampered = json.loads(archived.read_text())
    tampered["rounds"][-1]["epsilon"] /= 2
    archived.write_text(json.dumps(tampered))
    fingerprint = tampered["data_fingerprint"]
    assert spent_before_reset(state, **{**other, "fingerprint": fingerprint}) == []
    caplog.clear()
    _site_round(settings, config, 2)
    assert "already charged" not in caplog.text


def test_a_spent_sites_round_charges_no_steps_even_where_an_old_charge_has_its_number(
    tmp_path: Path, site_file: Path, bank_rows: tuple[pd.DataFrame, list[str]]
) -> None:
    # Run 1 spends the site's cap in its rounds 1 and 2. A later run's server,
    # resumed after its round 1 (the site answered "spent"), selects the site
    # once more for round 2: the ledger's last charge is numbered 2 too (run
    # 1's). Counted as this round's charge, the server would find the ledger
    # holding fewer steps before the round than it recorded, and refuse the
    # site as one whose ledger was replaced, instead of a spent one.
    settings = deployment_settings(bank_rows[1], "privacy.target_epsilon=8")
    config = node_config(site_file, tmp_path / "state", **{"max-epsilon": 1.0})
    for round_number in (1, 2):
        assert _site_round(settings, config, round_number)[ROUND_STEPS_KEY] > 0
    recorded = _site_round(settings, config, 1)
    again = _site_round(settings, config, 2)
    assert recorded[EXHAUSTED_KEY] == again[EXHAUSTED_KEY] == 1
    assert again[ROUND_STEPS_KEY] == 0
    assert ledger_regression(recorded, again) is None


def test_a_site_refuses_a_server_of_another_fedmodel_version_before_charging(
    tmp_path: Path, site_file: Path, bank_rows: tuple[pd.DataFrame, list[str]]
) -> None:
    settings = deployment_settings(bank_rows[1])
    state = tmp_path / "state"
    context = _site_context(node_config(site_file, state))
    for version, said in (("0.0.1", "0.0.1"), ("", "a version too old")):
        reply = client_app.train(_train_message(settings, 1, version=version), context)
        assert reply.has_error() and reply.error.code == CLIENT_REFUSED
        assert re.search(
            rf"client 3: the server runs fedmodel {said}.* this machine "
            rf"fedmodel {re.escape(__version__)}",
            reply.error.reason,
        ), reply.error.reason
        # Refused before the ledger: nothing was charged or written.
        assert not (state / "privacy_ledger.json").exists()


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (("task=bank",), "needs task=files"),
        (("task.train_files=[a.csv]",), "remove task.train_files"),
        (("task.val_fraction=0.1",), "task.val_fraction=0.1 in a deployment"),
        (("privacy=off",), "privacy=off in a deployment"),
        (("privacy=central",), "privacy=central in a deployment"),
    ],
)
def test_server_refuses_deployment_settings_no_site_could_train_with(
    overrides: tuple[str, ...], fragment: str
) -> None:
    config = small_config("federation=deployment", "task=files", *overrides)
    if config["task"]["name"] == "files":
        config["task"]["labels"] = ["a", "b"]
        config["task"]["test_file"] = "test.csv"
    with pytest.raises(FedmodelError, match=fragment):
        check_deployment_settings(settings_from_dict(config))


def test_server_refuses_a_federation_it_does_not_know() -> None:
    # Set in the config, as a stored one holds it: the override
    # federation.name=cluster is refused before composing (test_config).
    config = small_config("federation=deployment")
    config["federation"]["name"] = "cluster"
    with pytest.raises(FedmodelError, match="'cluster' is unknown"):
        check_deployment_settings(settings_from_dict(config))


def test_a_site_does_not_look_for_files_the_server_names(
    tmp_path: Path, site_file: Path, bank_rows: tuple[pd.DataFrame, list[str]]
) -> None:
    # Expanding the server's pattern on the site's disk would tell the server,
    # by a refusal or not, which files the site holds (and its working folder).
    settings = deployment_settings(bank_rows[1])
    state = tmp_path / "state"
    context = _site_context(node_config(site_file, state))
    for pattern in (str(tmp_path / "no-such-*.csv"), str(site_file.parent / "*")):
        message = _train_message(
            settings, 1, extra={"task.train_files": f"json:[{json.dumps(pattern)}]"}
        )
        reply = client_app.train(message, context)
        # A resume keeps task.train_files: the stop line advises a new run.
        assert reply.has_error() and reply.error.code == CLIENT_REFUSED_RUN
        assert "refuses a run-config with task.train_files" in reply.error.reason
        assert str(Path.cwd()) not in reply.error.reason
        assert not (state / "privacy_ledger.json").exists()


def test_a_sites_delta_not_below_1_over_n_names_the_sites_own_setting(
    tmp_path: Path, site_file: Path, bank_rows: tuple[pd.DataFrame, list[str]]
) -> None:
    # Its file may have shrunk since the launch checked it, or the SuperNode
    # was started with Flower's own --node-config: the round refuses, naming
    # the site's setting, not the server's privacy.target_delta (which never
    # reaches a site), before anything is charged.
    rows, names = bank_rows
    state = tmp_path / "state"
    config = node_config(site_file, state, delta=1 / len(rows))
    reply = client_app.train(
        _train_message(deployment_settings(names), 1), _site_context(config)
    )
    assert reply.has_error() and reply.error.code == CLIENT_REFUSED
    assert (
        f"--delta (node config delta): {1 / len(rows):g} is not below 1/n = "
        f"1/{len(rows)} for the {len(rows)} records of the site's data-file"
    ) in reply.error.reason
    assert "privacy.target_delta" not in reply.error.reason
    assert not (state / "privacy_ledger.json").exists()


def test_a_site_launch_refuses_each_delta_its_rounds_refuse(tmp_path: Path) -> None:
    # The float 1/49 lies a hair below 1/49, so 49 times it rounds to just
    # under 1: the launch's own product passed it, while every round's
    # choose_delta refused it, naming the server's privacy.target_delta,
    # which never reaches a site. One rule now answers both.
    site = SiteConfig(
        0, tmp_path / "data.csv", tmp_path / "state", max_epsilon=1.0, delta=1 / 49
    )
    with pytest.raises(
        FedmodelError,
        match=re.escape(
            f"--delta (node config delta): {1 / 49:g} is not below 1/n = 1/49"
        ),
    ):
        check_site_delta(site, records=49)
    with pytest.raises(FedmodelError, match="is not below 1/n = 1/49"):
        choose_delta(49, 1 / 49, client_id="0")
    check_site_delta(dataclasses.replace(site, delta=1 / 50), records=49)


def test_a_sites_weak_delta_is_said_once_naming_its_own_option(
    tmp_path: Path,
    site_file: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Below 1/n for the site's 120 records, but above 1e-3. The site's log
    # names the option its operator sets, not the server's
    # privacy.target_delta, when the round opens its ledger; not again after.
    rows, names = bank_rows
    settings = deployment_settings(names)
    config = node_config(site_file, tmp_path / "state", delta=0.005)
    assert _site_round(settings, config, 1)["epsilon"] > 0
    said = " ".join(capsys.readouterr().err.split())
    assert (
        f"site 3 ({len(rows)} records): delta 0.005 is above 0.001, so its "
        "epsilon may fail to hold with probability up to 0.005. For a "
        "meaningful guarantee set --delta (node config delta) to 1e-5: a fixed "
        "delta must be below 1/n, n the site's records"
    ) in said
    assert "privacy.target_delta" not in said
    _site_round(settings, config, 2)
    assert "is above 0.001" not in capsys.readouterr().err


def test_a_site_trains_on_every_record_of_its_file(
    tmp_path: Path, site_file: Path, bank_rows: tuple[pd.DataFrame, list[str]]
) -> None:
    # Records held out by their place in the file: one record more moves
    # others in or out of training, which a one-record epsilon does not cover.
    rows, names = bank_rows
    state = tmp_path / "state"
    context = _site_context(node_config(site_file, state))
    held_out = deployment_settings(names, "task.val_fraction=0.2")
    reply = client_app.train(_train_message(held_out, 1), context)
    # A resume keeps task.val_fraction: the stop line advises a new run.
    assert reply.has_error() and reply.error.code == CLIENT_REFUSED_RUN
    assert "refuses task.val_fraction=0.2" in reply.error.reason
    assert not (state / "privacy_ledger.json").exists()
    figures = _site_round(deployment_settings(names), node_config(site_file, state), 1)
    assert figures["num-examples"] == len(rows)


def test_every_refusal_of_a_setting_a_resume_keeps_says_to_start_a_new_run(
    tmp_path: Path, site_file: Path, bank_rows: tuple[pd.DataFrame, list[str]]
) -> None:
    # Before, only the labels and columns refusals said so: the site's log
    # for privacy=off, task.train_files or task.val_fraction did not.
    names = bank_rows[1]
    settings = deployment_settings(names)
    site = site_from_node_config(node_config(site_file, tmp_path / "state"))
    assert site is not None
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(names[1:]))
    task = settings.task
    refusals: dict[str, Callable[[], object]] = {
        "train_files": lambda: check_site_run_config(
            {RULE_KEYS: [], "task": {"train_files": ["*.csv"]}}, site
        ),
        "val_fraction": lambda: check_site_run_config(
            {RULE_KEYS: [], "task": {"val_fraction": 0.2}}, site
        ),
        "privacy": lambda: capped_settings(
            deployment_settings(names, "privacy=off"), site
        ),
        "labels": lambda: check_site_labels(
            settings, dataclasses.replace(site, labels_file=labels_file)
        ),
        "columns": lambda: check_site_columns(
            settings, dataclasses.replace(site, columns=("text", "label"))
        ),
        "no labels": lambda: load_site_records(
            dataclasses.replace(settings, task=dataclasses.replace(task, labels=None)),
            site,
        ),
    }
    # One case for each raise in the package: a new refusal needs one here.
    package = Path(client_app.__file__).parents[1]
    raised = sum(
        path.read_text().count("raise RunRefusal(") for path in package.rglob("*.py")
    )
    assert raised == len(refusals)
    for name, refuse in refusals.items():
        with pytest.raises(RunRefusal) as refused:
            refuse()
        said = str(refused.value)
        assert said.endswith(
            "; resume=true cannot change this (a resume keeps the run's task "
            "settings and privacy mode): start a new run, in a new run-dir"
        ), (name, said)
        assert said.count("resume=true") == 1, (name, said)


def test_with_agreed_labels_a_refusal_does_not_depend_on_the_records(
    tmp_path: Path, site_file: Path, bank_rows: tuple[pd.DataFrame, list[str]]
) -> None:
    rows, names = bank_rows
    held = str(rows["intent"].iloc[0])
    absent = next(name for name in names if name not in set(rows["intent"]))
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(reversed(names)) + "\n\n")
    state = tmp_path / "state"
    config = node_config(site_file, state, **{"labels-file": str(labels_file)})
    context = _site_context(config)
    # A server probing for one label: the site's answer is the same whether
    # its records hold that label or not, and nothing is charged.
    reasons = []
    for missing in (held, absent):
        probe = deployment_settings([n for n in names if n != missing])
        reply = client_app.train(_train_message(probe, 1), context)
        assert reply.has_error() and reply.error.code == CLIENT_REFUSED_RUN
        reasons.append(reply.error.reason.replace(repr(missing), "LABEL"))
        assert not (state / "privacy_ledger.json").exists()
    assert reasons[0] == reasons[1]
    assert "refuses the run's task.labels" in reasons[0]
    # A resume keeps task.labels: the reason says so, and the server's stop
    # line no longer advises one (`test_participation`).
    assert reasons[0].endswith(
        "the server must send the label set the sites agreed to; resume=true "
        "cannot change this (a resume keeps the run's task settings and privacy "
        "mode): start a new run, in a new run-dir"
    )
    # The agreed set, in the server's own order, trains.
    figures = _site_round(deployment_settings(names), config, 1)
    assert 0 < figures["epsilon"] <= 1.0 + 1e-9


def test_with_agreed_columns_a_refusal_does_not_depend_on_the_records(
    tmp_path: Path, bank_rows: tuple[pd.DataFrame, list[str]]
) -> None:
    # Two site files that differ in one blank cell of a column the site does
    # not train on: a server naming that column as the text learns nothing
    # from the answer, and nothing is charged.
    rows, names = bank_rows
    reasons = []
    for blank in (False, True):
        frame = rows.assign(hiv_test="negative")
        if blank:
            frame.loc[5, "hiv_test"] = ""
        path = tmp_path / f"site-{blank}.csv"
        frame.to_csv(path, index=False)
        state = tmp_path / f"state-{blank}"
        config = node_config(
            path, state, **{"text-column": "note", "label-column": "intent"}
        )
        probe = deployment_settings(names, "task.text_column=hiv_test")
        reply = client_app.train(_train_message(probe, 1), _site_context(config))
        assert reply.has_error() and reply.error.code == CLIENT_REFUSED_RUN
        reasons.append(reply.error.reason)
        assert not (state / "privacy_ledger.json").exists()
    assert (
        reasons[0]
        == reasons[1]
        == (
            "client 3: site 3 refuses task.text_column='hiv_test' and "
            "task.label_column='intent': it agreed to train on the columns 'note' "
            "(text) and 'intent' (label) of its data-file; the server must send "
            "those; resume=true cannot change this (a resume keeps the run's task "
            "settings and privacy mode): start a new run, in a new run-dir"
        )
    )
    # The agreed columns train.
    figures = _site_round(deployment_settings(names), config, 1)
    assert figures["num-examples"] == len(rows)


def test_an_agreed_label_is_compared_in_its_composed_form(tmp_path: Path) -> None:
    # The site's labels-file writes the accent as a combining mark (NFD, as
    # macOS and some exports do), the server's task.labels as one character:
    # one label, as in the files task, and the other way round.
    labels_file = tmp_path / "labels.txt"
    site = SiteConfig(
        site_id=0,
        data_file=tmp_path / "site.csv",
        state_dir=tmp_path / "state",
        max_epsilon=1.0,
        labels_file=labels_file,
    )
    labels_file.write_text("cafe\u0301\nthe\u0301\n", encoding="utf-8")
    assert agreed_labels(labels_file) == ("caf\u00e9", "th\u00e9")
    check_site_labels(deployment_settings(["caf\u00e9", "th\u00e9"]), site)
    labels_file.write_text("caf\u00e9\nth\u00e9\n", encoding="utf-8")
    check_site_labels(deployment_settings(["cafe\u0301", "the\u0301"]), site)
    with pytest.raises(FedmodelError, match=r"lacks \['th\u00e9'\]"):
        check_site_labels(deployment_settings(["cafe\u0301", "tea"]), site)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a\nb\na\n", "line 3: label 'a' is listed twice"),
        ("caf\u00e9\ncafe\u0301\n", "line 2: label 'caf\u00e9' is listed twice"),
        ("\n \n", "lists no label"),
    ],
)
def test_a_bad_labels_file_is_named(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "labels.txt"
    path.write_text(text)
    named = re.escape(f"--labels-file (node config labels-file): '{path}'")
    with pytest.raises(FedmodelError, match=f"{named}.*{fragment}"):
        agreed_labels(path)
    # A SuperNode started with Flower's own --node-config meets a wrong path
    # first in a round (`fedmodel supernode` checks it at launch): the line
    # says what to do, as the other refusals of the file do.
    missing = tmp_path / "missing.txt"
    said = (
        f"--labels-file (node config labels-file): cannot read file {missing} "
        "(No such file or directory): fix the path, or let this user read the file"
    )
    with pytest.raises(FedmodelError, match=re.escape(said)):
        agreed_labels(missing)


@pytest.mark.parametrize("mode", ["head", "lora"])
def test_a_sites_round_tokenizes_each_text_once_and_counts_the_cut_ones(
    tmp_path: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    # The count of cut texts comes from the tokens the round trains (LoRA) or
    # embeds (head) with: the tokenizer reads each of the site's texts once.
    rows, names = bank_rows
    path = tmp_path / "site.csv"
    rows.to_csv(path, index=False)
    settings = deployment_settings(names, f"finetune={mode}")
    tokenizer = load_tokenizer(settings.model)
    cut = sum(len(ids) > 16 for ids in tokenizer(list(rows["note"]))["input_ids"])
    read: list[str] = []
    call = PreTrainedTokenizerBase.__call__

    def reading(self: PreTrainedTokenizerBase, text: Any, *args: Any, **kw: Any) -> Any:
        read.extend(text)
        return call(self, text, *args, **kw)

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", reading)
    reply = client_app.train(
        _train_message(settings, 1), _site_context(node_config(path, tmp_path / "s"))
    )
    assert not reply.has_error()
    assert sorted(read) == sorted(rows["note"])
    said = " ".join(capsys.readouterr().err.split())
    assert f"site 3: task.max_length 16 cuts {cut} of 120 training texts (" in said


def test_a_site_logs_the_texts_max_length_cuts_and_its_reply_carries_no_count(
    tmp_path: Path,
    bank_rows: tuple[pd.DataFrame, list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # How many of a site's texts task.max_length cuts is a statistic of its
    # records: the server cannot plan a deployment, so the site's operator
    # reads it in the site's own log; its reply holds its weights and the
    # figures the server reads, and no count of cut texts, under any key.
    rows, names = bank_rows
    rows = rows.assign(
        note=[f"{note} {'and then ' * (i % 9)}" for i, note in enumerate(rows["note"])]
    )
    path = tmp_path / "site.csv"
    rows.to_csv(path, index=False)
    settings = deployment_settings(names)
    tokens = load_tokenizer(settings.model)(list(rows["note"]))["input_ids"]
    cut = sum(len(ids) > settings.task.max_length for ids in tokens)
    assert cut == 94 and len(rows) == 120
    reply = client_app.train(
        _train_message(settings, 1), _site_context(node_config(path, tmp_path / "s"))
    )
    assert not reply.has_error()
    assert set(reply.content.array_records) == {ARRAYS_KEY}
    assert not reply.content.config_records
    assert set(reply.content.metric_records) == {METRICS_KEY}
    metrics = dict(reply.content.metric_records[METRICS_KEY])
    assert set(metrics) == SITE_REPLY_METRICS
    assert metrics["num-examples"] == len(rows)
    for figure in (cut, cut / len(rows), len(rows) - cut):
        assert figure not in metrics.values()
    said = " ".join(capsys.readouterr().err.split())
    assert (
        "site 3: task.max_length 16 cuts 94 of 120 training texts (79%): a cut "
        "text keeps its first 16 tokens ([CLS] and [SEP] among them) and loses "
        "the rest; to keep more, raise task.max_length or shorten those texts"
    ) in said
