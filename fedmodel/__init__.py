"""fedmodel: federated, differentially private fine-tuning of a shared BERT."""

from importlib.metadata import PackageNotFoundError, version

try:
    # One source: the version in pyproject.toml, as installed.
    __version__ = version("fedmodel")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
