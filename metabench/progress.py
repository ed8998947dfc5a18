"""A thin progress bar over tqdm (on stderr) that can be switched off."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """``Progress(total, initial, enabled)``; ``update(n, **postfix)``; ``write(msg)``; ``close()``."""

    def __init__(self, total: int, *, initial: int = 0, desc: str = "", enabled: bool = True):
        self._bar: Any = None
        self._postfix: dict[str, str] = {}
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step", file=sys.stderr,
                             dynamic_ncols=True, leave=True)

    def update(self, n: int = 1, **postfix: Any) -> None:
        if self._bar is None:
            return
        for k, v in postfix.items():
            self._postfix[k] = f"{v:.4g}" if isinstance(v, float) else str(v)
        if postfix:
            self._bar.set_postfix(self._postfix, refresh=False)
        self._bar.update(n)

    def write(self, msg: str) -> None:
        if self._bar is not None:
            self._bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
