"""Progress of long loops where people look for it: a bar on a terminal or in a notebook, plain
lines in a log file or a batch job's output, nothing when switched off."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

QUIET_SECONDS = 10.0  # no line before this: short work says nothing
LINE_SECONDS = 30.0  # then a line every LINE_SECONDS or LINE_FRACTION of the work
LINE_FRACTION = 0.05


def _interactive() -> bool:
    return sys.stderr.isatty() or "ipykernel" in sys.modules


class Progress:
    """``total`` steps of work (None: unknown) named ``desc``.

    ``enabled``: True or False, or None for a bar where someone watches (a terminal, a
    notebook) and plain lines on stderr otherwise.
    """

    def __init__(self, total, desc: str, unit: str, enabled: bool | None = None, initial=0):
        self.total, self.desc, self.unit = total, desc, unit
        self.enabled = enabled is not False
        self.bar = None
        if self.enabled and (enabled or _interactive()):
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False)
        self.initial = self.done = self.last_done = initial
        self.start = self.last = time.perf_counter()
        self.printed = False

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.start < QUIET_SECONDS:
            return
        step = (self.done - self.last_done) / self.total if self.total else 0.0
        if now - self.last >= LINE_SECONDS or step >= LINE_FRACTION:
            self._line(now)

    def write(self, text: str) -> None:
        """One line of news (which checkpoint, what was found), below the bar if there is one."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.enabled:
            print(text, file=sys.stderr, flush=True)

    def _line(self, now: float) -> None:
        elapsed = now - self.start
        if self.total:
            fraction = self.done / self.total
            rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
            left = (self.total - self.done) / rate if rate > 0 else float("nan")
            text = (
                f"{self.desc}: {self.done:,}/{self.total:,} {self.unit} ({fraction:.0%}), "
                f"{_duration(elapsed)} elapsed, about {_duration(left)} left"
            )
        else:
            text = f"{self.desc}: {self.done:,} {self.unit}, {_duration(elapsed)} elapsed"
        print(text, file=sys.stderr, flush=True)
        self.last, self.last_done, self.printed = now, self.done, True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.printed and self.done != self.last_done:
            self._line(time.perf_counter())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _duration(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
