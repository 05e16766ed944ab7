"""The run folder's file and folder names, but those named where written.

Readers of finished runs (`research/`) import the names from here, so they
never load the code that wrote them. A client's ledger
(`privacy/ledger_record.py`) and its stored features
(`training/feature_store.py`) are named where they are written, in layers
below this one; so are an export's `.partial` and `.replaced` folders
(`serve/export.py`), which sit beside wherever the model is exported.
"""

from pathlib import Path

RESOLVED_CONFIG = "resolved_config.yaml"
# The folder Hydra writes a start's files into (hydra.output_subdir's default).
HYDRA_DIR = ".hydra"
# The content hash of the distill.transfer_file the run's last start read.
TRANSFER_FILE_HASH = "transfer_file.sha256"
# The identity of the encoder the run's last start loaded (`encoder_identity`).
ENCODER_IDENTITY = "encoder_identity.txt"
# The sha256 of each task data file the run's last start named, by its path.
TASK_FILE_HASHES = "task_file_hashes.json"
# What each start keeps beside its resolved config for a resume to compare.
START_RECORDS = (TRANSFER_FILE_HASH, ENCODER_IDENTITY, TASK_FILE_HASHES)
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
PLOT_FILE = "progress.png"
SWEEP_PLOT_FILE = "privacy_utility.png"
TEACHER_DIR = "model"
STUDENT_DIR = "student"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "state.pt"
AUDIT_FILE = "audit.json"
CLIENTS_DIR = "clients"
LOG_FILE = "fedmodel.log"
# What a finished run's folder holds at the least: the readers of finished
# runs (audit, benchmarks) check for these before reading any of them.
FINISHED_RUN_FILES = (RESOLVED_CONFIG, SUMMARY_FILE, f"{TEACHER_DIR}/config.json")
# Flower's own files (its FLWR_HOME: config, the app's copy) in a simulation.
FLWR_HOME_DIR = ".flwr"
# Inside TEACHER_DIR / STUDENT_DIR, beside the Hugging Face files.
ONNX_FILE = "model.onnx"
# The model card: what the model is, its privacy guarantee, its test figures.
MODEL_CARD_FILE = "README.md"
QUANTIZED_ONNX_FILE = "model.int8.onnx"
# The graph's inputs, in the order the exporter traced them.
ONNX_INPUTS = ("input_ids", "attention_mask")
# How an exported folder can be served (`fedmodel predict --runtime`, summary
# keys) -> the file it runs; None is PyTorch on the Hugging Face files. AUTO
# picks the int8 graph when the folder has one, else PyTorch.
AUTO_RUNTIME = "auto"
RUNTIME_FILES: dict[str, str | None] = {
    "torch": None,
    "onnx": ONNX_FILE,
    "onnx_int8": QUANTIZED_ONNX_FILE,
}


def simulated_client_dir(run_dir: str | Path, client_id: int) -> Path:
    """Where one simulated client keeps its ledger and caches, in the run folder."""
    return Path(run_dir) / CLIENTS_DIR / f"client-{client_id}"


def checkpoint_file(run_dir: str | Path) -> Path:
    """The run's checkpoint: the last aggregated round a resume continues from."""
    return Path(run_dir) / CHECKPOINT_DIR / CHECKPOINT_FILE


def ledger_files(run_dir: Path) -> list[Path]:
    """The privacy ledgers a run keeps in its folder: the server's, its clients'.

    The client-level ledger (privacy=central) lies in the folder itself, a
    simulated client's in its own folder under `clients/`.
    """
    return sorted(
        [
            *run_dir.glob("*privacy_ledger.json"),
            *run_dir.glob(f"{CLIENTS_DIR}/*/*privacy_ledger.json"),
        ]
    )
