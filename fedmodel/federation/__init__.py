"""The only package that imports Flower: apps, strategies, simulation."""
