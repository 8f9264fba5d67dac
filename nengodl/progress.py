"""Progress bars (progressbar2) for the stages of building and running.

A `Stage` shows a bar while it runs (elapsed time, and ETA when the amount of
work is known) and prints ``"<Name> finished in H:MM:SS"`` when it ends.
"""

import contextlib
import datetime
import sys
import time

import progressbar
from nengo.utils.progress import Progress, ProgressBar


def interactive():
    """Whether bars can redraw in place (a terminal or a Jupyter kernel)."""
    return sys.stdout.isatty() or "ipykernel" in sys.modules


def format_duration(seconds):
    """``H:MM:SS`` for a number of seconds."""
    return str(datetime.timedelta(seconds=round(seconds)))


class Stage:
    """One stage of work with a progress bar.

    Parameters
    ----------
    name : str
        Name of the stage, e.g. ``"Construction"``.
    enabled : bool or nengo.utils.progress.ProgressBar
        If False, nothing is shown; a nengo ``ProgressBar`` instance is driven
        with nengo's own ``Progress`` objects.
    max_value : int, optional
        Amount of work, if known (e.g. the number of simulation steps).
    suffix : callable, optional
        Returns extra text for the closing line (e.g. a loss value).
    variables : tuple of str
        Names of values shown next to the bar (given to `update`), e.g. ``loss``.
    """

    def __init__(self, name, enabled=True, max_value=None, suffix=None, variables=()):
        self.name = name
        self.enabled = enabled
        self.max_value = max_value
        self.suffix = suffix
        self.variables = tuple(variables)
        self.bar = None
        self.start = None
        self.nengo_bar = enabled if isinstance(enabled, ProgressBar) else None
        self.nengo_progress = None

    def __enter__(self):
        self.start = time.time()
        if self.nengo_bar is not None:
            self.nengo_progress = Progress(self.name, self.name, self.max_value)
            self.nengo_progress.__enter__()
            self.nengo_bar.update(self.nengo_progress)
        elif self.enabled and interactive():
            if self.max_value is None:
                widgets = [
                    f"| {self.name} ",
                    progressbar.AnimatedMarker(),
                    " | ",
                    progressbar.Timer(format="%(elapsed)s"),
                ]
                max_value = progressbar.UnknownLength
            else:
                widgets = [f"{self.name} ", progressbar.Percentage(), " "]
                for var in self.variables:
                    widgets += [progressbar.Variable(var, precision=4), " "]
                widgets += [progressbar.Bar(), " ", progressbar.ETA()]
                max_value = self.max_value
            self.bar = progressbar.ProgressBar(
                widgets=widgets,
                max_value=max_value,
                fd=sys.stdout,
                redirect_stdout=False,
                line_breaks=False,
            )
            self.bar.start()
        return self

    def update(self, value, **variables):
        """Report progress (units of ``max_value``) and values of ``variables``."""
        if self.nengo_progress is not None:
            self.nengo_progress.step(value - self.nengo_progress.n_steps)
            self.nengo_bar.update(self.nengo_progress)
        if self.bar is not None:
            self.bar.update(
                min(value, self.bar.max_value) if self.max_value is not None else value,
                **{k: v for k, v in variables.items() if k in self.variables},
            )

    def __exit__(self, exc_type, exc, tb):
        if self.nengo_progress is not None:
            self.nengo_progress.__exit__(exc_type, exc, tb)
            self.nengo_bar.update(self.nengo_progress)
        if self.bar is not None:
            with contextlib.suppress(Exception):  # display only
                self.bar.finish(end="\r", dirty=True)
            sys.stdout.write("\r\x1b[K" if sys.stdout.isatty() else "\n")
        if self.enabled and self.nengo_bar is None:
            if exc_type is None:
                extra = f" ({self.suffix()})" if self.suffix else ""
                elapsed = format_duration(time.time() - self.start)
                sys.stdout.write(f"{self.name} finished in {elapsed}{extra}\n")
            sys.stdout.flush()
        return False
