"""Version of nengodl."""

__version__ = "0.1.0"
__copyright__ = "2026, the nengodl developers"
__license__ = "MIT"  # as in pyproject.toml
