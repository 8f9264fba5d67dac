"""Sphinx configuration for nengodl's documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
The notebooks in ``examples/`` are copied into ``docs/examples/`` (not tracked) and
rendered with the outputs stored in them; they are not executed here.
"""

import glob
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import nengodl  # noqa: E402

# --- the example notebooks --------------------------------------------------
# copy every examples/*.ipynb so that a glob toctree picks up new notebooks by itself
_copies = os.path.join(HERE, "examples")
shutil.rmtree(_copies, ignore_errors=True)
os.makedirs(_copies)
for _nb in glob.glob(os.path.join(ROOT, "examples", "*.ipynb")):
    shutil.copy(_nb, _copies)

# --- project --------------------------------------------------------------------
project = "nengodl"
author = "the nengodl developers"
copyright = "the nengodl developers"
release = nengodl.__version__
version = release

extensions = [
    "myst_nb",  # Markdown pages (MyST) and Jupyter notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # numpydoc-style docstrings
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
default_role = "py:obj"

# notebooks are committed with their outputs (executed at full settings)
nb_execution_mode = "off"
nb_output_stderr = "remove"
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "none"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

html_theme = "furo"
html_title = f"nengodl {release}"


# --- links from docstrings ------------------------------------------------------
# Docstrings name the pages of these docs as ``docs/<page>.md``, which reads well in
# help(); in the HTML reference such a mention becomes a link to the page.
_PAGE_MENTION = re.compile(r"``docs/([\w-]+)\.md``|docs/([\w-]+)\.md")


def _link_pages(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        lines[i] = _PAGE_MENTION.sub(lambda m: f":doc:`/{m.group(1) or m.group(2)}`", line)


def setup(app):
    app.connect("autodoc-process-docstring", _link_pages)
