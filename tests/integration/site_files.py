"""What a loopback federation's sites hold: their record files and their venv.

The site files are Banking77 records written out as a files task (CSV and
JSONL in turn); the site venv holds fedmodel only as an installed wheel, as a
site operator's install would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd

from fedmodel.config import compose_config, settings_from_dict
from fedmodel.data.tasks import load_task
from tests.integration.loopback import REPO, VENV_BIN

NUM_LABELS = 5


def write_site_files(
    directory: Path,
    *,
    records_per_site: int,
    num_sites: int = 2,
    num_labels: int = NUM_LABELS,
) -> tuple[list[Path], Path, list[str]]:
    """Sites' files (CSV and JSONL in turn) and the server's test file.

    Banking77's records of the first `num_labels` intents, shuffled, split
    into disjoint site files (the last may hold fewer when the records run
    out); returns the site files, the test file and the label names.
    """
    settings = settings_from_dict(compose_config(["model=tiny"]))
    task = load_task(settings.task, seed=0)
    names = list(task.label_names[:num_labels])

    def frame(split: object) -> pd.DataFrame:
        rows = [r for r in split if r["label"] < num_labels]  # type: ignore[attr-defined]
        return pd.DataFrame(
            {
                "text": [r["text"] for r in rows],
                "label": [names[r["label"]] for r in rows],
            }
        )

    train = frame(task.train).sample(frac=1.0, random_state=0)
    sites = []
    for site in range(num_sites):
        rows = train.iloc[site * records_per_site : (site + 1) * records_per_site]
        if site % 2 == 0:
            sites.append(directory / f"site{site}.csv")
            rows.to_csv(sites[-1], index=False)
        else:
            sites.append(directory / f"site{site}.jsonl")
            rows.to_json(sites[-1], orient="records", lines=True)
    test = directory / "test.parquet"
    frame(task.test).iloc[:100].to_parquet(test)
    return sites, test, names


def site_venv(directory: Path) -> Path:
    """A venv holding fedmodel only as an installed wheel; its `bin` directory.

    The wheel is built from this repository (`pip wheel --no-deps .`) and
    installed with `--no-deps`; a `.pth` file lets the venv see this test
    venv's third-party packages instead of installing them again, and Flower's
    commands get launchers that run the site venv's Python (what installing
    flwr there would write). The venv sees neither the repository nor its
    editable install.
    """
    # Nothing on PYTHONPATH (an in-process Ray or Flower run may have set it):
    # pip must see only the site venv, or it may take the repository's
    # fedmodel for an installed one and skip the wheel.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    wheels = directory / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["--quiet", "--wheel-dir", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
        env=env,
    )
    (wheel,) = wheels.glob("fedmodel-*.whl")
    venv = directory / "site-venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        capture_output=True,
    )
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    test_site_packages = sysconfig.get_path("purelib")
    (Path(purelib) / "test-venv-packages.pth").write_text(f"{test_site_packages}\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install"]
        + ["--quiet", "--no-deps", "--no-index", "--force-reinstall", str(wheel)],
        check=True,
        capture_output=True,
        env=env,
    )
    if not (venv / "bin" / "fedmodel").is_file():
        raise AssertionError(f"installing {wheel.name} wrote no {venv}/bin/fedmodel")
    for script in Path(VENV_BIN).glob("fl*"):
        _, body = script.read_text().split("\n", 1)
        launcher = venv / "bin" / script.name
        launcher.write_text(f"#!{python}\n{body}")
        launcher.chmod(0o755)
    return venv / "bin"
