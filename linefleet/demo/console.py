"""What the demo prints: stage headings, the commands it runs, compact output, progress.

Written for a plant manager watching a terminal: one heading per stage with a one-line
explanation, each command as a user would type it, only the interesting lines of its output
(indented), and a counter for anything that takes more than a moment.
"""

from __future__ import annotations

import shlex
import sys
from typing import TextIO

WIDTH = 24


class Console:
    def __init__(self, out: TextIO = sys.stdout, *, color: bool | None = None) -> None:
        self.out = out
        self.color = out.isatty() if color is None else color

    def _style(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def heading(self, number: int, total: int, title: str, explain: str) -> None:
        self.out.write(f"\n{self._style(f'[{number}/{total}] {title}', '1;36')}\n")
        self.out.write(f"      {explain}\n")
        self.out.flush()

    def elapsed(self, number: int, seconds: float) -> None:
        """How long a stage took: said under it, so a slow stage is plain to see."""
        self.out.write(f"  {self._style(f'stage {number} took {seconds:.1f} s', '2')}\n")
        self.out.flush()

    def done(self, text: str) -> None:
        self.out.write(f"\n{self._style('Done.', '1;32')} {text}\n")
        self.out.flush()

    def command(self, argv: list[str]) -> None:
        self.out.write(f"  $ {shlex.join(argv)}\n")
        self.out.flush()

    def output(self, text: str, *, limit: int = 12) -> None:
        """The command's output, indented; long output shows its head and its last lines."""
        lines = [line.rstrip() for line in text.splitlines() if line.strip()]
        if len(lines) > limit:
            head, tail = limit // 2, limit - limit // 2 - 1
            hidden = len(lines) - head - tail
            lines = [*lines[:head], f"... ({hidden} more lines)", *lines[-tail:]]
        for line in lines:
            self.out.write(f"    {line}\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.out.write(f"  {text}\n")
        self.out.flush()

    def ok(self, text: str) -> None:
        self.out.write(f"  {self._style('ok', '32')} {text}\n")
        self.out.flush()

    def skipped(self, text: str) -> None:
        self.out.write(f"  {self._style('skipped:', '33')} {text}\n")
        self.out.flush()

    def progress(self, label: str, done: int, total: int) -> None:
        """A progress bar on one line; rewritten in place on a terminal, printed at the end."""
        filled = WIDTH * done // max(total, 1)
        bar = "#" * filled + "." * (WIDTH - filled)
        line = f"  {label:<28} [{bar}] {done}/{total}"
        if self.color:
            self.out.write(f"\r{line}")
            if done >= total:
                self.out.write("\n")
        elif done >= total:
            self.out.write(f"{line}\n")
        self.out.flush()

    def failure(self, text: str) -> None:
        self.out.write(f"\n{self._style('demo failed:', '1;31')} {text}\n")
        self.out.flush()
