"""The documentation agrees with the code.

- Every ```python block of README.md and docs/*.md runs: each page's blocks in order, in
  one namespace, in a fresh Python process (this file, run as a script) with a timeout.
  A block right after a line ``<!-- no-run: reason -->`` is not run; the marker is for
  the few snippets that need hardware a test machine lacks (GPUs, several machines).
  A top-level ``print(...)  # text`` line must print the start of ``text``: the comment
  is the documented output.
- Every notebook in examples/ is in the one list of them, docs/examples.md.
- The Simulator signature in the user guide and in the README is
  ``inspect.signature(nengodl.Simulator)``.
- The project's test command is one string: the same in README.md,
  docs/getting-started.md and .ci/run.
- docs/performance.md opens with its summary table, and the README's speed figures are
  that table's; no page names a path of one particular machine.
"""

import ast
import contextlib
import glob
import inspect
import io
import os
import re
import subprocess
import sys
import tokenize

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
PAGES = ["README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))
)
NO_RUN = re.compile(r"<!--\s*no-run\b.*-->")

# distributed.md's snippets continue a reader's own model (`net`, `data`, `x`, `y`): they
# run after this setup. Its two multi-worker snippets (SKIP: a text each contains) need
# TF_CONFIG, other machines and a checkpoint folder of the reader's; they could instead be
# marked `<!-- no-run -->` on the page itself.
SETUP = {
    "docs/distributed.md": """
import nengo, numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
with nengo.Network(seed=0) as net:
    inp = nengo.Node(np.zeros(1))
    ens = nengo.Ensemble(10, 1)
    nengo.Connection(inp, ens)
    probe = nengo.Probe(ens)
x = {inp: np.ones((64, 1, 1))}
y = {probe: np.ones((64, 1, 1))}
data = {**x, **y}
""",
}
SKIP = {"docs/distributed.md": ["MultiWorkerMirroredStrategy()", "/scratch/backup_worker"]}


def code_blocks(page):
    """``(line, code, run)`` of each ```python block of ``page``."""
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i + 1
            end = lines.index("```", start)
            before = next((s for s in reversed(lines[:i]) if s.strip()), "")
            code = "\n".join(lines[start:end]) + "\n"
            run = not NO_RUN.search(before) and not any(k in code for k in SKIP.get(page, []))
            blocks.append((start + 1, code, run))
            i = end
        i += 1
    return blocks


def documented_output(lines, node):
    """The comment after a top-level ``print(...)`` statement, else None."""
    if not (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", None) == "print"
    ):
        return None
    last = lines[node.end_lineno - 1]
    tokens = tokenize.generate_tokens(io.StringIO(last + "\n").readline)
    with contextlib.suppress(tokenize.TokenError):
        for tok in tokens:
            if tok.type == tokenize.COMMENT and tok.start[1] >= node.end_col_offset:
                return tok.string[1:].strip()
    return None


def run_page(page):
    """Run the blocks of ``page`` (the script's job); raise on the first failure."""
    namespace = {"__name__": "__main__"}
    if page in SETUP:
        exec(SETUP[page], namespace)
    for line, code, run in code_blocks(page):
        if not run:
            print(f"--- {page}:{line}: not run")
            continue
        print(f"--- {page}:{line}", flush=True)
        # line numbers of the page, so that a traceback points at the page's line
        page_lines = [""] * (line - 1) + code.splitlines()
        tree = ast.increment_lineno(ast.parse(code), line - 1)
        for node in tree.body:
            compiled = compile(ast.Module([node], []), page, "exec")
            expected = documented_output(page_lines, node)
            if expected is None:
                exec(compiled, namespace)
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compiled, namespace)
            printed = out.getvalue().strip()
            print(printed)
            where = f"{page}:{node.lineno}"
            assert printed and expected.startswith(printed), (
                f"{where} prints {printed!r}, the page says {expected!r}"
            )


@pytest.mark.parametrize("page", [p for p in PAGES if any(r for *_, r in code_blocks(p))])
def test_code_blocks_run(page, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", NENGODL_PLOTS=str(tmp_path))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, __file__, page],
        cwd=tmp_path,  # files a snippet writes land here
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


def test_no_run_markers_are_rare():
    skipped = [(p, line) for p in PAGES for line, _, run in code_blocks(p) if not run]
    assert len(skipped) <= 4, skipped


def test_every_notebook_is_listed():
    with open(os.path.join(ROOT, "docs", "examples.md"), encoding="utf-8") as f:
        text = f.read()
    notebooks = sorted(glob.glob(os.path.join(ROOT, "examples", "*.ipynb")))
    assert len(notebooks) >= 9
    for nb in notebooks:
        name = os.path.basename(nb)
        # a link, and a run time on the same line
        rows = [s for s in text.splitlines() if f"(examples/{name})" in s]
        assert rows, f"docs/examples.md does not link {name}"
        assert re.search(r"\d+ (s|min)\b", rows[0]), f"no run time for {name}: {rows[0]}"


def test_documented_signature():
    import nengodl

    ((line, code, _), *_) = [b for b in code_blocks("docs/user-guide.md") if "Simulator(" in b[1]]
    call = next(
        n
        for n in ast.walk(ast.parse(code))
        if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "Simulator"
    )
    documented = [(a.id, inspect.Parameter.empty) for a in call.args]
    documented += [(k.arg, ast.literal_eval(k.value)) for k in call.keywords]
    real = [(p.name, p.default) for p in inspect.signature(nengodl.Simulator).parameters.values()]
    assert documented == real, f"docs/user-guide.md:{line}"


def test_readme_signature():
    import nengodl

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    shown = re.search(r"```text\nnengodl\.Simulator\((.*?)\)\n```", text, re.DOTALL).group(1)
    real = str(inspect.signature(nengodl.Simulator))[1:-1]
    assert " ".join(shown.split()) == real


def test_readme_quotes_the_performance_summary():
    with open(os.path.join(ROOT, "docs", "performance.md"), encoding="utf-8") as f:
        perf = f.read()
    assert perf.startswith("# Performance\n\n## Summary\n")
    summary = perf.split("\n## ")[1]
    assert "| benchmark | command | result |" in summary
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    speed = readme[readme.index("- Speed") :].split("\n\n")[0]
    figures = re.findall(r"\d[\d.]*(?:-\d[\d.]*)?(?:x| s\b| MiB)", speed)
    assert len(figures) >= 10
    for figure in figures:
        assert figure in summary, f"README's {figure} is not in performance.md's summary"


def test_no_paths_of_one_machine():
    machine_path = re.compile(r"(?<![\w.])/(tmp|home|work|root|Users)/")
    for page in PAGES:
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            assert not machine_path.search(f.read()), page


def test_one_test_command():
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = [s for s in f.read().splitlines() if "pytest" in s and "ruff" in s]
    assert len(ci) == 1
    (command,) = ci
    # the README starts with it as one line, after its install
    installed = f'pip install -e ".[test,docs]" && {command}'
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert readme.count(installed) == 1, "README.md does not give .ci/run's command"
    assert readme.index(installed) < readme.index("## "), "README.md: not at the top"
    with open(os.path.join(ROOT, "docs", "getting-started.md"), encoding="utf-8") as f:
        assert f.read().count(command) == 1, "getting-started.md does not give .ci/run's command"
    # nowhere else a variant of it: a line running both ruff and pytest is that command
    for page in PAGES:
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            for s in f.read().splitlines():
                if "ruff check" in s and "pytest" in s:
                    assert s.strip() in (command, installed), f"{page}: {s}"


if __name__ == "__main__":
    run_page(sys.argv[1])
