"""The files a launch names, checked before Flower starts.

Every certificate, key and data file must exist, the SuperLink's database
must be a file in a folder that can be written, and a site's records must
be readable as a round would read them, so that a bad path stops the launch
on the operator's console rather than a round later.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fedmodel.client.site import LABEL_COLUMN, TEXT_COLUMN, SiteConfig, site_setting
from fedmodel.client.site_delta import check_site_delta, site_delta_warning
from fedmodel.deploy.ledger_launch_check import check_stored_ledger
from fedmodel.errors import FedmodelError
from fedmodel.run.folder_check import check_writable_folder

log = logging.getLogger(__name__)

# What to do about each option's missing file.
_MISSING = {
    "--certs": "create the CA and the SuperLink's certificate with `fedmodel "
    "certs superlink`",
    "--ca-cert": "use the ca.crt the server operator sends (it is made by "
    "`fedmodel certs superlink`)",
    "--auth-key": "create the site's key pair with `fedmodel certs site` (and "
    "have the server operator register its .pub)",
    "--data-file": "give the path of the site's records (a CSV, TSV, JSONL or "
    "Parquet file)",
    "--labels-file": "give the file of the federation's labels, one per line, "
    "or leave the option out",
}


# The options a SuperNode's node config keeps, named as `site_setting` does.
_SITE_KEYS = ("--data-file", "--labels-file")


def existing_file(path: Path, option: str) -> Path:
    """`path` made absolute, or a refusal naming `option` and how to get it."""
    if not path.is_file():
        named = site_setting(option[2:]) if option in _SITE_KEYS else option
        raise FedmodelError(
            f"{named}: {path} does not exist or is not a file; {_MISSING[option]}"
        )
    return path.resolve()


def check_site_file(site: SiteConfig) -> None:
    """Read the site's file once at launch, not first when a round arrives.

    A file no round could read, one without an agreed `--text-column` or
    `--label-column`, or a `--delta` not below 1/n for its records, stops the
    launch on the operator's console. Each round checks again. A
    delta above 1e-3, given or the default 1/(10 n) the round would take, is
    said there too: the site still starts, as it still trains.
    """
    # Imported here: pandas loads only for the SuperNode's launch.
    from fedmodel.data.file_cells import require_column
    from fedmodel.data.file_formats import read_table

    path = existing_file(site.data_file, "--data-file")
    table = read_table(path, key=site_setting("data-file"))
    records = len(table)
    if records == 0:
        raise FedmodelError(
            f"{site_setting('data-file')}: file {path} holds no records, only a "
            "header; give the site's file of records"
        )
    # No pair agreed: nothing to check (the server names the columns).
    for key, column in zip(
        (TEXT_COLUMN, LABEL_COLUMN), site.columns or (), strict=False
    ):
        role, fix = key.removesuffix("-column"), f"give --{key} one of its columns"
        require_column(table, column, role=role, fix=fix, path=path, key=f"--{key}")
    check_site_delta(site, records=records)
    check_stored_ledger(site, records=records)
    weak = site_delta_warning(site.site_id, delta=site.delta, records=records)
    if weak is not None:
        log.warning("%s", weak)


def check_database(database: Path) -> None:
    """Refuse a --database that Flower's SQLite could not open or create."""
    if database.is_dir():
        raise FedmodelError(
            f"--database: {database} is a folder; give a file in it, e.g. "
            f"--database={database / 'superlink.db'}"
        )
    if not database.parent.is_dir():
        raise FedmodelError(
            f"--database: the folder {database.parent} of {database} does not "
            "exist or is not a folder; create it first or choose another path"
        )
    check_writable_folder(
        database.parent,
        key="--database",
        what="the database's folder",
        example="state/superlink.db",
    )
