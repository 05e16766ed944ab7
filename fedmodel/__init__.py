"""fedmodel: federated, differentially private fine-tuning of a shared BERT."""

__version__ = "0.1.0"
