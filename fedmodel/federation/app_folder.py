"""The Flower app folder `flwr run` takes: a pyproject.toml and no code.

`flwr run DIR` bundles DIR into a Flower app bundle (FAB) and sends it with
the run; the SuperLink and every SuperNode unpack it and load the ServerApp
and ClientApp it names, the bundle's own copy of a module first. A bundle
made from a checkout carries the checkout's fedmodel source, so each site
would train with the server operator's copy of the code, uncommitted edits
and all. The folder written here holds only pyproject.toml: the bundle
names fedmodel's apps, and each machine runs the fedmodel installed on it
(the wheel a site installed and checked). It also lets a server operator
with only the wheel start runs, and `flwr run` builds it at once, where a
checkout's bundle first walks every file of the checkout, `.venv` and
`outputs/` included.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from fedmodel import __version__
from fedmodel.config.run_config import FLWR_RUN_CONFIG
from fedmodel.errors import FedmodelError

PYPROJECT = "pyproject.toml"
DEFAULT_FOLDER = Path("fedmodel-app")
PUBLISHER = "fedmodel"
COMPONENTS = {
    "serverapp": "fedmodel.federation.server_app:app",
    "clientapp": "fedmodel.federation.client_app:app",
}


def write_app_folder(folder: Path) -> tuple[Path, bool]:
    """Write `folder`/pyproject.toml (made if needed); its path, and if written.

    A pyproject.toml there already is never replaced: one that holds what
    this fedmodel writes is left as it is (False), and any other (another
    project's, another fedmodel version's, or one edited since) is refused,
    since what a user saved there would be lost without a word.
    """
    _check_name(folder)
    path = folder / PYPROJECT
    text = app_pyproject()
    if path.exists():
        _refuse_other(path, text)
        return path, False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as handle:  # "x": never replaces
            handle.write(text)
    except OSError as exc:
        raise FedmodelError(
            f"could not write {path}: {exc.strerror or exc}; name a folder you "
            "can write to"
        ) from exc
    return path, True


def _refuse_other(path: Path, text: str) -> None:
    """Refuse an existing `path` that does not hold `text`, naming what it is."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass  # unreadable: not ours to replace, refused below
    if not _is_ours(path):
        raise FedmodelError(
            f"{path} exists and is not a fedmodel app folder's; it is left as "
            "it is: name a new or empty folder, e.g. fedmodel flwr-app "
            f"{DEFAULT_FOLDER}"
        )
    raise FedmodelError(
        f"{path} is a fedmodel app folder's but differs from what fedmodel "
        f"{__version__} writes (another version's, or edited since); it is left "
        "as it is: name a new or empty folder, or move that file away (keep "
        f"what you changed in it) and run fedmodel flwr-app {path.parent} again"
    )


def app_pyproject() -> str:
    """The app's pyproject.toml: this fedmodel's apps and run-config keys."""
    components = _toml_lines(COMPONENTS)
    config = _toml_lines(FLWR_RUN_CONFIG)
    return f"""\
# Written by `fedmodel flwr-app` (fedmodel {__version__}). A Flower app with no
# code: the ServerApp and ClientApp below are loaded from the fedmodel
# installed on each machine (SuperLink and every SuperNode).
[project]
name = "fedmodel"
version = "{__version__}"
description = "fedmodel's ServerApp and ClientApp, as installed on each machine"
license = "Apache-2.0"

[tool.flwr.app]
publisher = "{PUBLISHER}"
# Only this file goes into the bundle, whatever else the folder holds.
fab-include = ["{PYPROJECT}"]

[tool.flwr.app.components]
{components}

[tool.flwr.app.config]
# Hydra overrides applied on top of fedmodel's packaged config, e.g.
# --run-config "overrides='task=hospital num_clients=6'". The run folder:
# "" means outputs/<date>/<time>-flwr-<task> under the SuperLink's working
# directory, so prefer an absolute one.
{config}
"""


def _toml_lines(table: dict[str, str]) -> str:
    # A JSON string is a TOML basic string for these plain ASCII values.
    return "\n".join(f"{key} = {json.dumps(value)}" for key, value in table.items())


def _check_name(folder: Path) -> None:
    """Flower refuses to bundle a folder whose name is not an app name."""
    from flwr.supercore.utils import is_valid_name

    name = folder.resolve().name
    valid, why = is_valid_name(name)
    if not valid:
        raise FedmodelError(
            f"Flower takes no app folder named {name!r} ({why}): name another, "
            f"e.g. {DEFAULT_FOLDER}"
        )


def _is_ours(path: Path) -> bool:
    try:
        written: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    app = written.get("tool", {}).get("flwr", {}).get("app", {})
    return app.get("publisher") == PUBLISHER and app.get("components") == COMPONENTS
