"""Server-side checks for a deployment (`federation=deployment`).

In a deployment each site reads its own file; the server holds none of them,
only its own (its test file, and `task.validation_file` or
`distill.transfer_file` where set), and must tell every site the label set.
These checks run before any round, so a misconfigured run stops with a
message instead of failing at the sites one by one.
"""

from __future__ import annotations

from fedmodel.config import RunSettings
from fedmodel.config.modes import DEPLOYMENT
from fedmodel.errors import FedmodelError


def check_deployment_settings(settings: RunSettings) -> None:
    """Refuse server settings no set of sites could train with."""
    if settings.federation.name != DEPLOYMENT:
        raise FedmodelError(
            f"federation.name {settings.federation.name!r} is unknown; use "
            "federation=simulation or federation=deployment"
        )
    task = settings.task
    if task.name != "files" or not task.labels or not task.test_file:
        raise FedmodelError(
            "a deployment needs task=files with task.test_file (the server's "
            "own test file) and task.labels (the label set of every site's file), "
            f"got task={task.name!r}, test_file={task.test_file!r}, "
            f"labels={task.labels!r}"
        )
    if task.train_files:
        raise FedmodelError(
            "task.train_files is set, but in a deployment each site names its "
            "own file in its SuperNode's node config (data-file): remove "
            f"task.train_files={task.train_files}"
        )
    if task.val_fraction:
        raise FedmodelError(
            f"task.val_fraction={task.val_fraction} in a deployment: every site "
            "trains on all the records of its file and refuses a round that "
            "would hold some out (picked by their place in the file, outside "
            "what its epsilon covers); set task.val_fraction=0"
        )
    if not settings.privacy.record_level:
        raise FedmodelError(
            f"privacy={settings.privacy.mode} in a deployment: every site caps "
            "its epsilon, noises its own updates with DP-SGD and refuses a round "
            "without it (privacy=central would have it send its update unnoised); "
            "use privacy=dpsgd"
        )
