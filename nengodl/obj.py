"""Objectives for training and evaluation (NengoDL 2's ``nengodl.obj``)."""

from nengodl.objectives import Regularize, mse

__all__ = ["Regularize", "mse"]
