"""The audit's record checks: a run without held-out records is refused clearly."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from fedmodel.errors import FedmodelError
from fedmodel.research.audit_records import require_held_out


def test_a_run_that_trained_on_every_record_is_refused_naming_the_key(
    tmp_path: Path,
) -> None:
    # task.val_fraction is 0 by default: the client holds no non-members.
    empty = datasets.Dataset.from_dict({"text": [], "label": []})
    with pytest.raises(FedmodelError) as raised:
        require_held_out(empty, client=0, run_dir=tmp_path)
    message = str(raised.value)
    assert "holds 0 held-out records" in message
    assert "task.val_fraction above 0" in message and str(tmp_path) in message
    two = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    require_held_out(two, client=0, run_dir=tmp_path)
