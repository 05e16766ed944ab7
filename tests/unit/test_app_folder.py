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
    path, _ = write_app_folder(folder)
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
    # One edited since, or another fedmodel version's, was rewritten without
    # a word: what the user saved there is kept, and the way out named.
    own = tmp_path / "fedmodel-app" / "pyproject.toml"
    edited = own.read_text().replace('run-dir = ""', 'run-dir = "/srv/runs"')
    older = own.read_text().replace(__version__, "0.0.1")
    for text in (edited, older):
        own.write_text(text)
        assert run_command(["flwr-app"]) == 2
        assert own.read_text() == text
        assert capsys.readouterr().err.strip() == (
            "fedmodel flwr-app: error: fedmodel-app/pyproject.toml is a fedmodel "
            f"app folder's but differs from what fedmodel {__version__} writes "
            "(another version's, or edited since); it is left as it is: name a "
            "new or empty folder, or move that file away (keep what you changed "
            "in it) and run fedmodel flwr-app fedmodel-app again"
        )
    # The same file again is left as it is, and said to be.
    own.unlink()
    assert run_command(["flwr-app"]) == 0
    assert write_app_folder(tmp_path / "fedmodel-app") == (own, False)
    assert run_command(["flwr-app"]) == 0
    assert "kept (it holds what this fedmodel writes)" in capsys.readouterr().out
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
