import io
import tomllib
import zipfile
from pathlib import Path

import pytest
from flwr.cli.build import build_fab_from_disk
from flwr.common.config import validate_config

from fedmodel import __version__
from fedmodel.cli.main import run_command
from fedmodel.errors import FedmodelError
from fedmodel.federation.app_folder import write_app_folder
from fedmodel.federation.client_app import app as client_app
from fedmodel.federation.server_app import app as server_app


def test_the_app_names_the_installed_apps_and_its_bundle_holds_no_code(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "fedmodel-app"
    path = write_app_folder(folder)
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    # Flower's own check, importing the modules the components name.
    valid, errors, _ = validate_config(config, check_module=True, project_dir=folder)
    assert valid, errors
    assert config["project"]["version"] == __version__
    assert config["tool"]["flwr"]["app"]["config"] == {"overrides": "", "run-dir": ""}
    # What the components name is what fedmodel simulate runs.
    components = config["tool"]["flwr"]["app"]["components"]
    module, _, name = components["clientapp"].partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is client_app
    module, _, name = components["serverapp"].partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is server_app
    # Code left in the folder stays out of the bundle `flwr run` sends.
    (folder / "client_app.py").write_text("app = None\n")
    (folder / "notes.md").write_text("# notes\n")
    bundle = zipfile.ZipFile(io.BytesIO(build_fab_from_disk(folder)))
    assert sorted(bundle.namelist()) == [".info/CONTENT", "pyproject.toml"]


def test_the_command_writes_it_and_refuses_what_is_not_its_own(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_command(["flwr-app"]) == 0
    assert "flwr run fedmodel-app" in capsys.readouterr().out
    # Written again over its own file (another fedmodel version's too).
    own = tmp_path / "fedmodel-app" / "pyproject.toml"
    own.write_text(own.read_text().replace(__version__, "0.0.1"))
    write_app_folder(tmp_path / "fedmodel-app")
    assert f'version = "{__version__}"' in own.read_text()
    # Another project's pyproject.toml is kept as it was.
    other = tmp_path / "my-app"
    other.mkdir()
    (other / "pyproject.toml").write_text('[project]\nname = "mine"\n')
    with pytest.raises(FedmodelError, match=r"my-app/pyproject.toml exists.*left as"):
        write_app_folder(other)
    assert (other / "pyproject.toml").read_text() == '[project]\nname = "mine"\n'
    assert run_command(["flwr-app", "my-app"]) == 2
    # A folder name Flower would refuse to bundle is named before anything is written.
    with pytest.raises(FedmodelError, match=r"no app folder named 'my_app'"):
        write_app_folder(tmp_path / "my_app")
    assert not (tmp_path / "my_app").exists()
    # A file where the folder should be is named, not a traceback.
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(FedmodelError, match=r"could not write .*taken/pyproject"):
        write_app_folder(tmp_path / "taken")
