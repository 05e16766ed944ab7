"""Exported models: Hugging Face and ONNX export, inference, size and latency."""
