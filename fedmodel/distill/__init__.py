"""Teacher-to-student distillation: losses, server distillation, finishing."""
