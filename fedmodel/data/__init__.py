"""Records for a run: tasks, file validation, client partitions, tokenization.

Nothing here imports Flower's apps; `flwr_datasets` supplies the partitioners.
"""

from fedmodel.data.clients import load_client_data, split_client_data
from fedmodel.data.partition import PARTITIONERS, partition_clients
from fedmodel.data.splits import TaskData
from fedmodel.data.tasks import TASKS, load_task
from fedmodel.data.tokenization import (
    PaddingCollator,
    length_order,
    make_text_loader,
    tokenize_texts,
)

__all__ = [
    "PARTITIONERS",
    "TASKS",
    "PaddingCollator",
    "TaskData",
    "length_order",
    "load_client_data",
    "load_task",
    "make_text_loader",
    "partition_clients",
    "split_client_data",
    "tokenize_texts",
]
