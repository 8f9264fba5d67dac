"""Objectives for training and evaluation (the seed tutorial's ``nengodl.obj``)."""

from nengodl.objectives import Regularize, mse

__all__ = ["Regularize", "mse"]
