"""Serializable layers shared by tasks (importing this package registers them with Keras)."""

from dlapps.layers.tabular import ImputeMissing

__all__ = ["ImputeMissing"]
