"""A deployed site: its SuperNode's node config, its cap, the run-configs it refuses.

At a site the ClientApp reads everything the site owns from the SuperNode's
`--node-config`, never from the server: which file holds its records, where its
privacy ledger lives, and the most privacy it will ever spend. The server's
run-config says how to train; the site's cap bounds what that may cost, and a
run-config that names files for the site to read, holds records out or trains
without DP-SGD at the site is refused. The records are read in `site_data.py`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fedmodel.config import RunSettings
from fedmodel.config.budget_rule import RULE_KEYS
from fedmodel.config.budget_table import budget_row
from fedmodel.errors import FedmodelError

log = logging.getLogger(__name__)

# Node-config keys a site sets on its SuperNode.
SITE_ID = "site-id"
DATA_FILE = "data-file"
STATE_DIR = "state-dir"
MAX_EPSILON = "max-epsilon"
DELTA = "delta"
LABELS_FILE = "labels-file"
# The two columns of its data-file a site agreed to train on (both or neither).
TEXT_COLUMN = "text-column"
LABEL_COLUMN = "label-column"
# Set by Flower's simulation engine on every simulated node.
SIMULATED_CLIENT = "partition-id"


def site_setting(key: str) -> str:
    """How a message names a site's setting: the option and the node-config key.

    `fedmodel supernode --data-file FILE` fills the node config's `data-file`;
    Flower's own `--node-config` sets it directly. The operator typed one.
    """
    return f"--{key} (node config {key})"


class RunRefusal(FedmodelError):
    """A site's refusal of a setting the run keeps when it resumes.

    The run's task settings (its labels, columns, train files, held-out
    records) and its privacy mode: a resume keeps them
    (`run/resumed_settings.py`), so the resumed run would be refused the same
    way. Its own type, sent with its own error code, so that the server's stop
    line advises a new run instead (`federation/failure_watch.py`). Its text
    ends with `ENDING`, added here so that no refusal can leave it out.
    """

    # What the site's operator reads at the end of each such refusal in the
    # SuperNode's log; the server's stop line says it in its own words.
    ENDING = (
        "; resume=true cannot change this (a resume keeps the run's task "
        "settings and privacy mode): start a new run, in a new run-dir"
    )

    def __str__(self) -> str:
        return f"{super().__str__()}{self.ENDING}"


@dataclass(frozen=True)
class SiteConfig:
    """What a site decides for itself, from its SuperNode's node config."""

    site_id: int
    data_file: Path
    state_dir: Path
    max_epsilon: float
    delta: float | None = None
    # The federation's label set as the site agreed it, one per line: the
    # server's task.labels must be this set, so it cannot choose the labels a
    # site's file is checked against (a refusal would tell it which it holds).
    labels_file: Path | None = None
    # The (text, label) columns the site agreed to: the server's
    # task.text_column and task.label_column must be these, so it cannot name
    # a column whose cells would decide whether the site's file is refused.
    columns: tuple[str, str] | None = None


def site_from_node_config(node_config: Mapping[str, object]) -> SiteConfig | None:
    """The site's settings, or None when the node is a simulated client.

    A node is a site when its node config names a `data-file`; then
    `site-id`, `state-dir` and `max-epsilon` are required and `delta` is
    optional, as are `labels-file` and the pair `text-column` and
    `label-column`. Any missing or bad value is a FedmodelError naming the key.
    """
    if DATA_FILE not in node_config:
        if SIMULATED_CLIENT in node_config:
            return None
        raise FedmodelError(
            f"this SuperNode's --node-config has no {DATA_FILE}: start it with "
            "`fedmodel supernode ... --data-file FILE` (see docs/deployment.md)"
        )
    missing = [
        key for key in (SITE_ID, STATE_DIR, MAX_EPSILON) if key not in node_config
    ]
    if missing:
        raise FedmodelError(
            f"the SuperNode's --node-config sets {DATA_FILE} but not {missing}: "
            f"a site needs {SITE_ID}, {DATA_FILE}, {STATE_DIR} and {MAX_EPSILON} "
            "(see docs/deployment.md)"
        )
    site_id = node_config[SITE_ID]
    if isinstance(site_id, bool) or not isinstance(site_id, int) or site_id < 0:
        raise FedmodelError(
            f"{site_setting(SITE_ID)}: {site_id!r} must be an integer >= 0"
        )
    max_epsilon = _positive(node_config[MAX_EPSILON], MAX_EPSILON)
    delta = None
    if DELTA in node_config:
        delta = _positive(node_config[DELTA], DELTA)
        if delta >= 1:
            raise FedmodelError(f"{site_setting(DELTA)}: {delta!r} must be below 1")
    labels_file = None
    if LABELS_FILE in node_config:
        labels_file = Path(str(node_config[LABELS_FILE])).expanduser()
    return SiteConfig(
        site_id=site_id,
        data_file=Path(str(node_config[DATA_FILE])).expanduser(),
        state_dir=Path(str(node_config[STATE_DIR])).expanduser(),
        max_epsilon=max_epsilon,
        delta=delta,
        labels_file=labels_file,
        columns=_agreed_columns(node_config),
    )


def check_site_run_config(raw: Mapping[str, object], site: SiteConfig) -> None:
    """Refuse a run-config with train files, held-out records or no rule keys.

    `task.train_files` would have the site expand the server's patterns on its
    disk, telling the server what files it holds. `task.val_fraction` > 0 would
    hold out records by their place in the file: one record more or less moves
    others in or out of training, beyond what a one-record epsilon covers.
    Without `budget_rule_keys` a capped site could not tell the rule's values
    (which follow its cap) from the user's (which stay).
    """
    if RULE_KEYS not in raw:
        raise FedmodelError(
            f"site {site.site_id} refuses a run-config without {RULE_KEYS} (the "
            "keys whose values the server's budget rule chose): it cannot tell "
            "them from values the user set. Run the server with this fedmodel "
            "version and its packaged config (fedmodel/conf)"
        )
    task = raw.get("task")
    if not isinstance(task, Mapping):
        return
    if task.get("train_files"):
        raise RunRefusal(
            f"site {site.site_id} refuses a run-config with task.train_files: a "
            "site trains on the data-file in its own node config. Remove "
            "task.train_files from the server's config"
        )
    if task.get("val_fraction"):
        raise RunRefusal(
            f"site {site.site_id} refuses task.val_fraction="
            f"{task['val_fraction']!r}: a site trains on every record of its "
            "data-file (held-out records would be picked by their place in the "
            "file, outside what its epsilon covers). Set task.val_fraction=0 "
            "in the server's config"
        )


def capped_settings(settings: RunSettings, site: SiteConfig) -> RunSettings:
    """The server's settings with the site's privacy cap applied.

    The target epsilon becomes min(server's target, site's max-epsilon), used
    both to calibrate the noise and as the ledger's cap. The delta is the
    site's own, its `delta` or 1 / (10 n) of its records, never the server's:
    a server's delta up to 1/n would let the site's epsilon cap mean little.
    A round without DP-SGD at the site is refused:
    `privacy=off` would release updates at an unbounded epsilon, and
    `privacy=central` would send the server the site's unnoised update and
    leave the noise to the server, so neither honours the site's cap.
    """
    privacy = settings.privacy
    if not privacy.record_level or privacy.target_epsilon is None:
        raise RunRefusal(
            f"site {site.site_id} refuses a round without DP-SGD at the site "
            f"(privacy={privacy.mode}): it caps its epsilon at "
            f"{site.max_epsilon:g} and noises its own updates. "
            "Run the federation with privacy=dpsgd"
        )
    target = min(privacy.target_epsilon, site.max_epsilon)
    if target < privacy.target_epsilon:
        log.info(
            "site %d: the server asked for epsilon %g; the site's cap %g wins",
            site.site_id,
            privacy.target_epsilon,
            target,
        )
    if privacy.target_delta is not None and privacy.target_delta != site.delta:
        log.info(
            "site %d: the server asked for delta %g; the site keeps its own (%s)",
            site.site_id,
            privacy.target_delta,
            "1/(10 n)" if site.delta is None else f"{site.delta:g}",
        )
    delta = site.delta
    capped = replace(
        settings,
        privacy=replace(privacy, target_epsilon=target, target_delta=delta),
    )
    return _rule_for_cap(capped, site_id=site.site_id)


def _rule_for_cap(capped: RunSettings, *, site_id: int) -> RunSettings:
    """The budget rule's values for the site's cap, in the keys the rule filled.

    The budget rule picks the learning rate, batch, epochs and clip from the
    target epsilon. A site whose cap is below the server's target calibrates
    its noise to the cap, so a value the rule chose for the server's target
    follows the cap too. The server's settings list those keys
    (`budget_rule_keys`); every other value was set by someone and stays,
    even one equal to the rule's.
    """
    row = budget_row(
        finetune_mode=capped.finetune.mode,
        target_epsilon=capped.privacy.target_epsilon,
    )
    groups = {"finetune": capped.finetune, "privacy": capped.privacy}
    changed: dict[str, dict[str, Any]] = {"finetune": {}, "privacy": {}}
    for dotted in capped.budget_rule_keys:
        group, key = dotted.split(".")
        ours = getattr(row, key)
        if ours is not None and ours != getattr(groups[group], key):
            changed[group][key] = ours
    if not any(changed.values()):
        return capped
    log.info(
        "site %d: the budget rule's settings for its cap replace those for the "
        "server's target: %s",
        site_id,
        ", ".join(f"{k} {v}" for group in changed.values() for k, v in group.items()),
    )
    return replace(
        capped,
        finetune=replace(capped.finetune, **changed["finetune"]),
        privacy=replace(capped.privacy, **changed["privacy"]),
    )


def _agreed_columns(node_config: Mapping[str, object]) -> tuple[str, str] | None:
    """The site's `text-column` and `label-column`, given together or not at all."""
    given = [key for key in (TEXT_COLUMN, LABEL_COLUMN) if key in node_config]
    if not given:
        return None
    if len(given) == 1:
        other = LABEL_COLUMN if given[0] == TEXT_COLUMN else TEXT_COLUMN
        raise FedmodelError(
            f"{site_setting(given[0])} is given without {site_setting(other)}: "
            "give both (a server free to name the other column could still "
            "pick one whose cells decide whether the site's file is refused)"
        )
    text, label = (str(node_config[key]).strip() for key in given)
    if not text or not label or text == label:
        raise FedmodelError(
            f"{site_setting(TEXT_COLUMN)} and {site_setting(LABEL_COLUMN)} must "
            f"name two different columns of the data-file, not {text!r} and "
            f"{label!r}"
        )
    return text, label


def _positive(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FedmodelError(f"{site_setting(key)}: {value!r} must be a number")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise FedmodelError(f"{site_setting(key)}: {value!r} must be a positive number")
    return number
