"""pytest plugin for running nengo-spa's test suite against nengodl.Simulator.

Used by the project's test command::

    python -m pytest -n 2 -p tests.nengo_spa_plugin --pyargs nengo_spa --slow

nengo's own plugin (``pytest_nengo``) supplies the ``Simulator`` fixture to
nengo-spa's tests, but its two collection rules only apply to tests inside a
package whose top-level directory is named ``nengo`` (``is_nengo_test``), so
they never reach nengo-spa's tests. This plugin applies the same two rules to
them:

- when the simulator is not ``nengo.Simulator``, tests that do not use the
  ``Simulator`` fixture are deselected (they test nengo-spa's frontend, not the
  simulator);
- ``nengo_test_unsupported`` entries whose pattern starts with ``nengo_spa/``
  skip the matching tests with their reason (or mark them xfail under
  ``--unsupported``). A pattern is matched with `fnmatch` against the test's id
  qualified by its package, e.g.
  ``nengo_spa/modules/tests/test_state.py::test_neurons``; as in
  ``pytest_nengo``, a ``*`` is put in front and square brackets are literal.

nengo's run ignores the ``nengo_spa/`` entries: its test ids never contain
``nengo_spa/``, and this plugin ignores all other entries.
"""

import os
import shlex
from fnmatch import fnmatch

import nengo_spa
import pytest
from pytest_nengo import is_sim_overridden

PREFIX = "nengo_spa/"
_SPA_DIR = os.path.dirname(os.path.abspath(nengo_spa.__file__))


def spa_test_id(item):
    """The id of a nengo-spa test qualified by its package, or None for other tests.

    Parameters
    ----------
    item : pytest.Item
        A collected test.

    Returns
    -------
    str or None
        ``nengo_spa/<path inside the package>::<rest of the nodeid>``.
    """
    path = os.path.abspath(str(item.path))
    if os.path.commonpath([path, _SPA_DIR]) != _SPA_DIR:
        return None
    rel = os.path.relpath(path, os.path.dirname(_SPA_DIR)).replace(os.sep, "/")
    parts = item.nodeid.split("::", 1)
    return rel if len(parts) == 1 else f"{rel}::{parts[1]}"


def spa_unsupported(config):
    """The ``(pattern, reason)`` pairs of ``nengo_test_unsupported`` for nengo-spa.

    Parameters
    ----------
    config : pytest.Config
        The run's configuration.

    Returns
    -------
    list of (str, str)
        Each pattern ready for `fnmatch` (``*`` in front, brackets literal) and its
        reason, for the entries whose pattern starts with ``nengo_spa/``.

    Raises
    ------
    pytest.UsageError
        If the list does not alternate patterns and reasons.
    """
    words = shlex.split(" ".join(config.getini("nengo_test_unsupported")))
    if len(words) % 2:
        raise pytest.UsageError(
            "nengo_test_unsupported: expected pairs of a test pattern and a quoted "
            f"reason, got an odd number of entries ({len(words)})"
        )
    pairs = []
    for pattern, reason in zip(words[::2], words[1::2]):
        if pattern.startswith(PREFIX):
            literal = "".join(f"[{c}]" if c in "[]" else c for c in pattern)
            pairs.append(("*" + literal, reason))
    return pairs


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """Deselect frontend-only nengo-spa tests and mark the unsupported ones."""
    if is_sim_overridden(config):
        kept, deselected = [], []
        for item in items:
            frontend = spa_test_id(item) is not None and "Simulator" not in item.fixturenames
            (deselected if frontend else kept).append(item)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = kept

    unsupported = spa_unsupported(config)
    for item in items:
        test_id = spa_test_id(item)
        if test_id is None:
            continue
        for pattern, reason in unsupported:
            if fnmatch(test_id, pattern):
                if config.getoption("unsupported"):
                    item.add_marker(pytest.mark.xfail(reason=reason))
                else:
                    item.add_marker(pytest.mark.skip(reason=reason))
                break
