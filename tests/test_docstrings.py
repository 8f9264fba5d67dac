"""The examples in nengodl's docstrings run and print what they say."""

import doctest
import importlib
import pkgutil

import pytest

import nengodl

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(nengodl.__path__, "nengodl.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
