"""A table's column names, each used once, whatever format its file is in."""

from __future__ import annotations

from pathlib import Path

from fedmodel.config.wording import plural
from fedmodel.errors import FedmodelError


def refuse_repeated_columns(path: Path, names: list[str]) -> None:
    """Refuse `path`'s table where `names` holds a column name more than once."""
    # pandas renames a repeated CSV name ("label.1"), json.loads keeps a
    # repeated key's last value and pyarrow cannot select it: all silent or
    # obscure, so a repeated column name is refused wherever it appears.
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise FedmodelError(
            f"file {path} names the {plural(len(repeated), 'column')} {repeated} "
            "more than once; rename or remove the extra "
            f"{plural(len(repeated), 'column')} so each name is used once"
        )
