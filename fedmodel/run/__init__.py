"""The run folder: its layout, metrics, checkpoint, tracking and logging."""
