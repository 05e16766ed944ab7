"""Operator tooling around Flower's SuperLink and SuperNode binaries."""
