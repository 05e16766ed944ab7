"""A site installs the wheel, not the repository: configs ship inside it.

Builds the wheel, installs it with --no-deps into a fresh venv outside the
repository (the third-party packages come from this venv through a .pth
file, the editable fedmodel does not), and runs `fedmodel` from a temp dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from tests.conftest import FEW_LATENCY_CALLS, ONE_ACTOR

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _run(
    command: list[str], cwd: Path, timeout: int
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done


def _isolation() -> list[str]:
    """Build with this venv's setuptools when it can (offline and fast).

    pyproject's build needs setuptools 77 (license string); a fresh 3.11 venv
    has 65, and then pip fetches the build backend from the package index.
    """
    try:
        major = int(version("setuptools").split(".")[0])
    except PackageNotFoundError:
        return []
    return ["--no-build-isolation"] if major >= 77 else []


def _package_files(package: Path) -> set[str]:
    return {
        str(path.relative_to(package))
        for pattern in ("*.py", "*.yaml")
        for path in package.rglob(pattern)
        if "local" not in path.relative_to(package).parts
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv holding only the built wheel."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            *_isolation(),
            "-w",
            str(dist),
            str(REPO),
        ],
        cwd=root,
        timeout=600,
    )
    (wheel,) = dist.glob("fedmodel-*.whl")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        cwd=root,
        timeout=60,
    ).stdout.strip()
    # Third-party packages from the test venv; its .pth files (the editable
    # fedmodel among them) are not read from a path listed here.
    (Path(site) / "test_venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        cwd=root,
        timeout=600,
    )
    return env_dir / "bin"


def test_the_wheel_carries_the_configs_and_not_the_checkout(
    installed: Path, tmp_path: Path
) -> None:
    where = _run(
        [str(installed / "python"), "-c", "import fedmodel; print(fedmodel.__file__)"],
        cwd=tmp_path,
        timeout=60,
    ).stdout.strip()
    assert Path(where).is_relative_to(installed.parent)
    assert not Path(where).is_relative_to(REPO)
    conf = Path(where).parent / "conf"
    assert (conf / "config.yaml").is_file()
    # setuptools builds through the checkout's build/ and never empties it: a
    # module deleted or renamed since an earlier build would ship too.
    shipped = _package_files(Path(where).parent)
    assert shipped == _package_files(REPO / "fedmodel"), (
        f"the wheel holds {sorted(shipped - _package_files(REPO / 'fedmodel'))} "
        f"that the checkout does not: `rm -rf {REPO / 'build'}` and build again"
    )
    assert (conf / "debug" / "smoke.yaml").is_file()
    assert (conf / "hydra" / "help" / "fedmodel.yaml").is_file()
    job = _run(
        [str(installed / "fedmodel"), "simulate", "--cfg", "job"],
        cwd=tmp_path,
        timeout=120,
    ).stdout
    assert "num_clients: 4" in job and "name: bank" in job
    # The files task's packaged config composes too, one client per file.
    sites = ("a", "b", "c")
    for site in sites:
        rows = "".join(
            f"{site} text {i},{'yes' if i % 2 else 'no'}\n" for i in range(20)
        )
        (tmp_path / f"{site}.csv").write_text("text,label\n" + rows)
    (tmp_path / "test.csv").write_text("text,label\nheld out,yes\nheld back,no\n")
    plans = _run(
        [
            str(installed / "fedmodel"),
            "privacy-plan",
            "--json",
            "task=files",
            f"task.train_files=[{','.join(f'{site}.csv' for site in sites)}]",
            "task.test_file=test.csv",
        ],
        cwd=tmp_path,
        timeout=300,
    ).stdout
    assert len(json.loads(plans)["clients"]) == len(sites)


def test_a_checkouts_own_overrides_stay_out_of_the_wheel(tmp_path: Path) -> None:
    # Built from a copy: the checkout's build/ and conf/local/ stay as they are.
    source = tmp_path / "source"
    shutil.copytree(
        REPO / "fedmodel",
        source / "fedmodel",
        ignore=shutil.ignore_patterns("__pycache__", "local"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    local = source / "fedmodel" / "conf" / "local" / "default.yaml"
    local.parent.mkdir()
    local.write_text("# @package _global_\nprivacy:\n  target_epsilon: 50\n")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", *_isolation()]
    _run([*build, "-w", str(tmp_path), str(source)], cwd=tmp_path, timeout=600)
    (wheel,) = tmp_path.glob("fedmodel-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "fedmodel/conf/config.yaml" in names
    assert not [name for name in names if name.startswith("fedmodel/conf/local/")]


def test_the_wheel_writes_the_flwr_app_folder(installed: Path, tmp_path: Path) -> None:
    # A server operator with only the wheel gets the folder `flwr run` takes,
    # and Flower finds the apps it names in the wheel's venv.
    _run([str(installed / "fedmodel"), "flwr-app"], cwd=tmp_path, timeout=120)
    checked = _run(
        [
            str(installed / "python"),
            "-c",
            "import tomllib, fedmodel; from flwr.common.config import "
            "validate_config; c = tomllib.load(open('fedmodel-app/pyproject.toml', "
            "'rb')); print(validate_config(c, check_module=True, "
            "project_dir='fedmodel-app')[0], fedmodel.__file__)",
        ],
        cwd=tmp_path,
        timeout=120,
    ).stdout.split()
    assert checked[0] == "True"
    assert Path(checked[1]).is_relative_to(installed.parent)


def test_the_smoke_run_works_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    done = _run(
        [
            *[str(installed / "fedmodel"), "simulate", "debug=smoke", ONE_ACTOR],
            *FEW_LATENCY_CALLS,
        ],
        cwd=tmp_path,
        timeout=900,
    )
    (run_dir,) = (tmp_path / "outputs").glob("*/*-bank")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rounds_completed"] == 1
    assert len(summary["clients"]) == 2
    assert (run_dir / "model" / "model.onnx").is_file()
    assert "fedmodel done: final test accuracy" in done.stderr
    # Flower's and Ray's lines went to the log file, not the console.
    log = (run_dir / "fedmodel.log").read_text()
    for line in ("configure_train", "Started a local Ray instance"):
        assert line not in done.stdout + done.stderr
        assert line in log
