"""Plain PyTorch training: loops, embedding cache, global model, warm start."""
