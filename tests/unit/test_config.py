"""Every config group composes into valid settings; the run-config bridge is exact."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from flwr.serverapp.strategy import Strategy

from fedmodel.config import (
    CONF_DIR,
    RunSettings,
    compose_config,
    from_run_config,
    settings_from_dict,
    to_run_config,
)
from fedmodel.config.budget_rule import with_budget_defaults
from fedmodel.config.compose import config_groups, group_options
from fedmodel.data.partition import PARTITIONERS
from fedmodel.data.tasks import TASKS
from fedmodel.errors import FedmodelError
from fedmodel.federation.strategy_choice import build_strategy
from fedmodel.model.finetune import finetune_mode
from fedmodel.privacy.modes import privacy_mode
from fedmodel.run.tracking import TRACKERS

GROUPS = config_groups()


@pytest.mark.parametrize(
    "override",
    [f"{group}={option}" for group in GROUPS for option in group_options(group)],
)
def test_every_group_option_composes(override: str) -> None:
    # task=files needs its files (a deployment, which lists none, sets the count).
    files = ["task.train_files=[a.csv,b.csv]"] if override == "task=files" else []
    raw = compose_config([override, *files])
    settings = settings_from_dict(raw)
    # Every value the run uses is a value the YAML states, or (where the YAML
    # says null) the budget rule's, or for task=files' null num_clients the
    # count of its files, whose paths are stored absolute: no hidden default.
    expected = with_budget_defaults(raw)
    if raw["num_clients"] is None:
        files = raw["task"]["train_files"]
        expected["num_clients"] = len(files)
        expected["task"]["train_files"] = [str(Path.cwd() / name) for name in files]
    assert dataclasses.asdict(settings) == expected
    # Build what the option names, as a run would.
    strategy = build_strategy(settings.strategy, num_clients=settings.num_clients)
    assert isinstance(strategy, Strategy)
    assert settings.partition.name in PARTITIONERS
    assert settings.task.name in TASKS
    assert finetune_mode(settings.finetune).name == settings.finetune.mode
    assert privacy_mode(settings.privacy).name == settings.privacy.mode
    assert settings.tracking.name in TRACKERS


def test_a_smoke_run_of_a_files_task_keeps_its_sites() -> None:
    # debug=smoke set partition=iid and 2 clients for every task, so a user
    # trying their own site files got 2 pooled clients instead of their sites.
    files = ["task=files", "task.train_files=[a.csv,b.csv,c.csv]", "debug=smoke"]
    smoke = settings_from_dict(compose_config(files))
    assert (smoke.partition.name, smoke.num_clients) == ("natural", 3)
    assert smoke.model.name == "tiny" and smoke.task.max_train_examples == 400
    # The other tasks keep the smoke run's own split.
    for task in ("bank", "hospital"):
        other = settings_from_dict(compose_config([f"task={task}", "debug=smoke"]))
        assert (other.partition.name, other.num_clients) == ("iid", 2)
        assert other.task.max_train_examples == 400


def _restated(base: dict, option: dict, prefix: str = "") -> list[str]:
    """The keys `option` sets to the value `base` already gives them."""
    found = []
    for key, value in option.items():
        if key == "defaults" or key not in base:
            continue
        if isinstance(value, dict) and isinstance(base[key], dict):
            found += _restated(base[key], value, f"{prefix}{key}.")
        elif base[key] == value:
            found.append(f"{prefix}{key}={value!r}")
    return found


@pytest.mark.parametrize(
    "group", [g for g in GROUPS if (CONF_DIR / g / "_base.yaml").is_file()]
)
def test_an_option_states_only_what_differs_from_its_base(group: str) -> None:
    base = yaml.safe_load((CONF_DIR / group / "_base.yaml").read_text()) or {}
    restated = {
        option: _restated(base, yaml.safe_load(path.read_text()) or {})
        for option in group_options(group)
        for path in [CONF_DIR / group / f"{option}.yaml"]
    }
    assert {o: keys for o, keys in restated.items() if keys} == {}


@pytest.mark.parametrize(
    ("override", "instead"),
    [
        # FedProx ran with strategy=fedavg's proximal_mu of 0, in silence.
        ("strategy.name=fedprox", "strategy=fedprox"),
        ("strategy.name=fedavg,fedprox", "strategy=fedavg,fedprox"),
        # MiniLM trained, under the name tiny.
        ("model.name=tiny", "model=tiny"),
        ("privacy.mode=off", "privacy=off"),
    ],
)
def test_the_key_that_names_an_option_is_refused(override: str, instead: str) -> None:
    key = override.split("=")[0]
    group = key.split(".")[0]
    with pytest.raises(FedmodelError) as info:
        compose_config(["strategy=fedavg", override])
    assert str(info.value) == (
        f"{override}: {key} names the option the {group} keys came from, and "
        f"setting it brings none of that option's keys; write {instead} instead"
    )


def test_the_key_that_names_no_option_is_refused_with_the_options() -> None:
    with pytest.raises(FedmodelError) as info:
        compose_config(["strategy.name=fedyogi"])
    assert str(info.value).endswith(
        "; choose the strategy with strategy=OPTION (options: fedadam, fedavg, "
        "fedprox, robust)"
    )


def test_a_missing_key_is_an_error_not_a_default() -> None:
    raw = compose_config([])
    del raw["warm_start"]["enabled"]
    with pytest.raises(FedmodelError, match=r"'warm_start\.enabled' is missing"):
        settings_from_dict(raw)


def test_the_printed_config_is_the_config_that_runs(tmp_path: Path) -> None:
    """`fedmodel simulate --cfg job` prints what a run resolves and writes.

    A run writes `resolved_config.yaml` as `asdict(settings)`; settings built
    from the printed config give back exactly the printed config.
    """
    fedmodel = Path(sys.executable).parent / "fedmodel"
    overrides = ["privacy=central", "distill=off", "num_rounds=3"]
    done = subprocess.run(
        [str(fedmodel), "simulate", "--cfg", "job", *overrides],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    printed = yaml.safe_load(done.stdout)
    assert printed == compose_config(overrides)
    settings = settings_from_dict(printed)
    resolved = yaml.safe_load(yaml.safe_dump(dataclasses.asdict(settings)))
    assert resolved == with_budget_defaults(printed)
    # The values the old dataclass defaults contradicted come from the YAML.
    assert settings.warm_start.enabled is True
    assert settings.task.split_seed == 42
    assert settings.model.normalize is True


def _round_trip(settings: RunSettings) -> RunSettings:
    return settings_from_dict(dataclasses.asdict(settings))


def test_settings_round_trip_through_a_dict() -> None:
    settings = settings_from_dict(compose_config(["experiment=hospitals_eps3"]))
    assert _round_trip(settings) == settings


def test_groups_match_design() -> None:
    for group in (
        "task",
        "model",
        "partition",
        "privacy",
        "strategy",
        "distill",
        "federation",
        "experiment",
        "finetune",
    ):
        assert group in GROUPS


def test_run_config_round_trip_is_exact() -> None:
    raw = compose_config(["partition=natural", "partition.label_groups={a: x, b: y}"])
    flat = to_run_config(raw)
    assert all("_" not in key for key in flat)
    assert all(isinstance(v, bool | int | float | str) for v in flat.values())
    assert from_run_config(flat) == raw


def test_experiment_overrides_only_what_differs() -> None:
    raw = compose_config(["experiment=hospitals_eps3"])
    assert raw["task"]["name"] == "hospital"
    assert raw["privacy"]["target_epsilon"] == 3.0
    assert raw["num_clients"] == 6


def test_a_files_task_keeps_one_file_per_client_unless_told_otherwise() -> None:
    # Each train file is one site's records: task=files picks the natural
    # partition; the built-in tasks keep Dirichlet label skew.
    assert compose_config(["task=files"])["partition"]["name"] == "natural"
    assert compose_config([])["partition"]["name"] == "dirichlet"
    assert compose_config(["task=hospital"])["partition"]["name"] == "dirichlet"
    # An explicit partition wins, whichever comes first on the command line.
    for overrides in (
        ["task=files", "partition=dirichlet"],
        ["partition=dirichlet", "task=files"],
    ):
        assert compose_config(overrides)["partition"]["name"] == "dirichlet"


def test_a_files_task_has_one_client_per_file_unless_told_otherwise() -> None:
    files = "task.train_files=[a.csv,b.csv,c.csv]"
    # The composed config leaves the count to the run; the settings (what the
    # run writes to resolved_config.yaml and privacy-plan shows) count the files.
    assert compose_config(["task=files", files])["num_clients"] is None
    settings = settings_from_dict(compose_config(["task=files", files]))
    assert settings.num_clients == 3
    assert dataclasses.asdict(settings)["num_clients"] == 3
    # A number the user sets wins, from the command line or an experiment.
    assert (
        settings_from_dict(
            compose_config(["task=files", files, "num_clients=2"])
        ).num_clients
        == 2
    )
    assert (
        settings_from_dict(
            compose_config(["task=files", files, "experiment=centralized"])
        ).num_clients
        == 1
    )
    # The files' own column written out is the same split: still one per file.
    assert (
        settings_from_dict(
            compose_config(["task=files", files, "partition.column=site"])
        ).num_clients
        == 3
    )
    # The other tasks keep the packaged 4.
    assert settings_from_dict(compose_config(["task=hospital"])).num_clients == 4


def test_a_pattern_in_train_files_lists_what_it_matches_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("b.csv", "a.csv", "c.jsonl", "notes.txt", "odd[1].csv"):
        (tmp_path / name).write_text("text,label\n")
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "d.csv").write_text("text,label\n")
    monkeypatch.chdir(tmp_path)
    settings = settings_from_dict(
        compose_config(["task=files", "task.train_files=[c.jsonl,*.csv]"])
    )
    # Sorted, so client i is the same file in every process; listed names stay
    # where they are; a name that exists as written is taken as it is. Each
    # is stored absolute, so the run folder names it from any folder.
    names = ["c.jsonl", "a.csv", "b.csv", "odd[1].csv"]
    assert settings.task.train_files == [str(tmp_path / name) for name in names]
    assert settings.num_clients == 4
    assert dataclasses.asdict(settings)["task"]["train_files"][1] == str(
        tmp_path / "a.csv"
    )
    recursive = settings_from_dict(
        compose_config(["task=files", "task.train_files=['**/d.csv','odd[1].csv']"])
    )
    names = ["deep/d.csv", "odd[1].csv"]
    assert recursive.task.train_files == [str(tmp_path / name) for name in names]
    pattern = re.escape(f"task.train_files[1]='{tmp_path}/sites/*.csv'")
    with pytest.raises(FedmodelError, match=pattern + " matches no file"):
        settings_from_dict(
            compose_config(["task=files", "task.train_files=[a.csv,sites/*.csv]"])
        )


def test_a_pattern_leaving_out_a_file_but_for_letter_case_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: 'sites/*.csv' beside a site_c.CSV (another system's export) made
    # a run of two clients, the third site silently taking no part.
    (tmp_path / "sites").mkdir()
    for name in ("site_a.csv", "site_b.csv", "site_c.CSV"):
        (tmp_path / "sites" / name).write_text("text,label\n")
    # A folder whose name differs in case is another folder: not named.
    (tmp_path / "SITES").mkdir()
    (tmp_path / "SITES" / "site_d.csv").write_text("text,label\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FedmodelError) as info:
        settings_from_dict(
            compose_config(["task=files", "task.train_files=[sites/*.csv]"])
        )
    assert str(info.value) == (
        f"task.train_files[0]='{tmp_path}/sites/*.csv' leaves out the file "
        f"['{tmp_path}/sites/site_c.CSV'], which it would match but for letter "
        "case (an export from another system, such as a '.CSV'): that site "
        "would take no part in the run. Rename it to match the pattern, or "
        "list the files, so that every site's file is named"
    )
    # A pattern that names the files it leaves out by more than case is fine,
    # and so is one that takes every case (letters inside [...] are kept).
    narrow = "task.train_files=['sites/site_[ab].csv']"
    assert settings_from_dict(compose_config(["task=files", narrow])).num_clients == 2
    wide = "task.train_files=['sites/*.[cC][sS][vV]']"
    assert settings_from_dict(compose_config(["task=files", wide])).num_clients == 3


def test_a_pattern_matching_the_servers_file_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sites' files and the test file exported to one folder: listed
    # after expansion, the test file would read as one more site's.
    for name in ("site_a.csv", "site_b.csv", "test.csv", "val.csv"):
        (tmp_path / name).write_text("text,label\n")
    monkeypatch.chdir(tmp_path)
    files = "task.train_files=[*.csv]"
    for key, name in (("test_file", "test.csv"), ("validation_file", "./val.csv")):
        overrides = ["task=files", files, f"task.{key}={name}"]
        with pytest.raises(FedmodelError) as info:
            settings_from_dict(compose_config(overrides))
        assert str(info.value).startswith(
            f"task.train_files[0]='{tmp_path}/*.csv' matches task.{key} "
            f"({tmp_path / name})"
        )
    narrow = ["task=files", "task.train_files=[site_*.csv]", "task.test_file=test.csv"]
    assert settings_from_dict(compose_config(narrow)).num_clients == 2


def test_a_files_task_without_files_or_a_count_names_both() -> None:
    # A deployment lists no train files (each site names its own): the count
    # must be given.
    raw = compose_config(["task=files", "federation=deployment"])
    with pytest.raises(
        FedmodelError, match=r"num_clients is not set.*task\.train_files is empty"
    ) as raised:
        settings_from_dict(raw)
    # Every format a site's file may be in (TSV was left out).
    assert "list one CSV / TSV / JSONL / Parquet file per site" in str(raised.value)
    assert settings_from_dict({**raw, "num_clients": 2}).num_clients == 2
    # Where the records are dealt out again, the files are not the clients:
    # the count must be given, not taken as the number of files.
    for partition in (
        "partition=dirichlet",
        "partition=iid",
        "partition.column=hospital",
        "partition.label_groups={a: x}",
    ):
        with pytest.raises(
            FedmodelError,
            match=r"(out again|the groups are the clients): set num_clients",
        ):
            settings_from_dict(
                compose_config(["task=files", "task.train_files=[all.csv]", partition])
            )
    assert (
        settings_from_dict(
            compose_config(
                [
                    "task=files",
                    "task.train_files=[all.csv]",
                    "partition=dirichlet",
                    "num_clients=4",
                ]
            )
        ).num_clients
        == 4
    )
    # One file written without the brackets is named, not counted as none.
    with pytest.raises(FedmodelError, match=r"'task\.train_files' must be a list"):
        settings_from_dict(compose_config(["task=files", "task.train_files=s0.csv"]))


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("num_clients=0", "num_clients"),
        ("privacy.target_epsilon=-1", "privacy.target_epsilon"),
        ("privacy.accountant=gdp", "privacy.accountant"),
        ("privacy.target_delta=2", "privacy.target_delta"),
        ("finetune.batch_size=0", "finetune.batch_size"),
        ("task.val_fraction=1.5", "task.val_fraction"),
        ("finetune.optimizer=foo", "finetune.optimizer must be one of"),
        ("task.train_files=[a.csv]", "task.train_files is set, but task=bank"),
        ("task.test_file=t.csv", "task.test_file is set, but task=bank"),
        ("task.labels=[a,b]", "task.labels is set, but task=bank"),
        ("privacy.target_epsilon=[1,2]", "privacy.target_epsilon' must be a number"),
    ],
)
def test_bad_values_name_the_key(override: str, fragment: str) -> None:
    with pytest.raises(FedmodelError, match=fragment.replace(".", r"\.")):
        settings_from_dict(compose_config([override]))


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ("[' pos',neg]", "task.labels[0]=' pos': labels read from files are stripped"),
        ("[pos,'neg ']", "task.labels[1]='neg '"),
        ("[pos,'',neg]", "task.labels[1]='': labels read from files"),
        # Nothing left to write once stripped: only dropping it is offered.
        ("[pos,'',neg]", "can hold it; drop it"),
        ("[pos,'  ',neg]", "task.labels[1]='  ': labels read from files"),
        ("[pos,'  ',neg]", "can hold it; drop it"),
    ],
)
def test_labels_a_file_could_not_hold_are_refused(labels: str, fragment: str) -> None:
    # A file's labels are read stripped: `' pos'` would match none of them.
    with pytest.raises(FedmodelError, match=re.escape(fragment)):
        settings_from_dict(compose_config([f"task.labels={labels}"]))


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["distill.rounds=3"], "distill.rounds=3 is set, but distill=server"),
        (["distill=off", "distill.rounds=1"], "only distill=federated"),
        (
            ["distill=off", "distill.transfer_file=/x.txt"],
            "distill.transfer_file='/x.txt' is set, but distill=off",
        ),
    ],
)
def test_distill_keys_the_mode_ignores_are_refused(
    overrides: list[str], fragment: str
) -> None:
    with pytest.raises(FedmodelError, match=re.escape(fragment)):
        settings_from_dict(compose_config(overrides))


def test_distill_keys_at_the_values_a_mode_ignores_pass() -> None:
    for overrides in (
        ["distill=server", "distill.rounds=0"],
        ["distill=off", "distill.rounds=0", "distill.transfer_file=null"],
        ["distill=server", "distill.transfer_file=/x.txt"],
        ["distill=federated", "distill.transfer_file=/x.txt"],
    ):
        settings_from_dict(compose_config(overrides))


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (
            ["finetune=lora", "finetune.train_embeddings=true"],
            "finetune.train_embeddings=true is set, but finetune=lora",
        ),
        (["finetune.train_embeddings=true"], "only finetune=full"),
        (
            ["privacy=central", "finetune=lora", "privacy.grad_sample_mode=ghost"],
            "privacy.grad_sample_mode='ghost' is set, but privacy=central",
        ),
        (["privacy=off", "privacy.grad_sample_mode=hooks"], "only privacy=dpsgd"),
        (
            ["privacy=central", "privacy.max_grad_norm=0.5"],
            "privacy.max_grad_norm=0.5 is set, but privacy=central",
        ),
        (["privacy=off", "finetune=full", "privacy.max_grad_norm=1"], "privacy=off"),
    ],
)
def test_finetune_and_clipping_keys_the_mode_ignores_are_refused(
    overrides: list[str], fragment: str
) -> None:
    # Before, each was accepted and had no effect: a run said nothing of it.
    with pytest.raises(FedmodelError, match=re.escape(fragment)):
        settings_from_dict(compose_config(["model=tiny", *overrides]))


def test_finetune_and_clipping_keys_a_mode_reads_pass() -> None:
    for overrides in (
        ["finetune=full", "finetune.train_embeddings=true"],
        ["finetune=lora", "finetune.train_embeddings=false"],
        ["finetune=lora", "privacy.grad_sample_mode=ghost"],
        ["finetune=full", "privacy.max_grad_norm=0.5"],
        # The rule's values, as a resolved config of these modes holds them.
        ["privacy=central", "finetune=lora"],
        ["privacy=off", "privacy.max_grad_norm=auto"],
    ):
        settings = settings_from_dict(compose_config(["model=tiny", *overrides]))
        resolved = settings_from_dict(dataclasses.asdict(settings))
        assert resolved == settings


def test_unknown_and_mistyped_keys_are_named() -> None:
    raw = compose_config([])
    with pytest.raises(FedmodelError, match="unknown config key.*'privacy'"):
        settings_from_dict({**raw, "privacy": {**raw["privacy"], "epsilon": 3}})
    with pytest.raises(FedmodelError, match="'num_rounds' must be an integer"):
        settings_from_dict({**raw, "num_rounds": "three"})


@pytest.mark.parametrize(
    ("override", "said"),
    [
        # It named the key and the value, not what to set.
        (
            "num_rounds=inf",
            "config key 'num_rounds' must be an integer: inf (a number past a "
            "float's range, as 1e400, reads as inf); set num_rounds= a whole "
            "number >= 1",
        ),
        ("finetune.batch_size=2.5", "set finetune.batch_size= a whole number >= 1"),
        (
            "distill.student.layers=[0,1.5]",
            "'distill.student.layers[1]' must be an integer: 1.5; set "
            "distill.student.layers='[...]' with each item a whole number >= 0",
        ),
        ("privacy.max_grad_norm=x", "set privacy.max_grad_norm= a number > 0"),
        ("privacy.target_epsilon=x", "set privacy.target_epsilon= a number > 0"),
        ("label_init=maybe", "set label_init=true or label_init=false"),
        ("privacy.accountant=null", "set privacy.accountant= one word or quoted"),
    ],
)
def test_a_value_of_the_wrong_type_says_what_to_set(override: str, said: str) -> None:
    with pytest.raises(FedmodelError) as refused:
        settings_from_dict(compose_config(["model=tiny", override]))
    assert said in str(refused.value)


def test_bad_override_is_a_clear_error() -> None:
    with pytest.raises(FedmodelError, match="task=nosuchtask"):
        compose_config(["task=nosuchtask"])


def test_a_pattern_matching_a_folder_is_refused_naming_the_pattern(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `sites/*` over the sites' exports and an old folder beside them: read
    # as a site's file, the folder was refused with advice to make its files
    # sites of their own, and the pattern the user typed went unnamed.
    sites = tmp_path / "sites"
    (sites / "archive").mkdir(parents=True)
    for name in ("a.csv", "b.csv", "archive/old.csv"):
        (sites / name).write_text("text,label\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FedmodelError) as info:
        settings_from_dict(compose_config(["task=files", "task.train_files=[sites/*]"]))
    assert str(info.value).startswith(
        f"task.train_files[0]='{sites}/*' matches the folder {sites / 'archive'}, "
        "and a pattern stands for the sites' files only: narrow it"
    )
    narrow = compose_config(["task=files", "task.train_files=[sites/*.csv]"])
    assert settings_from_dict(narrow).num_clients == 2


def test_a_pattern_matching_no_table_is_refused_naming_the_pattern(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A README beside the sites' exports: read as a site's file, it was
    # refused with advice to convert it, and the pattern went unnamed.
    sites = tmp_path / "sites"
    sites.mkdir()
    for name in ("a.csv", "b.jsonl", "README.md"):
        (sites / name).write_text("text,label\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FedmodelError) as info:
        settings_from_dict(compose_config(["task=files", "task.train_files=[sites/*]"]))
    assert str(info.value) == (
        f"task.train_files[0]='{sites}/*' matches {sites / 'README.md'}, which is "
        "no file of records (a pattern stands for the sites' files, each one of "
        "['.csv', '.jsonl', '.parquet', '.tsv']): narrow the pattern (to their "
        "suffix, e.g. '*.csv'), or move that file elsewhere"
    )
    named = compose_config(["task=files", "task.train_files=[sites/a.csv,sites/b.*]"])
    assert settings_from_dict(named).num_clients == 2
