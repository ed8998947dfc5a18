"""Helpers for the ``load_or_build`` tests: a counting builder and a source file."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class Builder:
    """A cache builder that counts its calls; arrays filled with ``value``."""

    def __init__(self, value: int = 1):
        self.calls = 0
        self.value = value

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        return {"x": np.full((10, 4, 4, 1), self.value, np.uint8), "counts": np.arange(5, dtype=np.int32)}


def write_source(tmp_path: Path, content: bytes = b"source v1") -> Path:
    """``tmp_path/src.bin`` holding ``content``."""
    p = tmp_path / "src.bin"
    p.write_bytes(content)
    return p
