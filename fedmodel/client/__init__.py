"""What one site does in a round, Flower-free: records, settings, local DP."""
