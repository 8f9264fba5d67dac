"""Version of nengodl."""

__version__ = "0.1.0"
