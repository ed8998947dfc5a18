"""Fixtures shared by the data-layer tests: a private cache directory for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

from metabench.data import cache as C
from metabench.data.integrity import VERIFY_ENV


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$METABENCH_CACHE`` in ``tmp_path``; the opt-in XLA compile cache off; cache verification on."""
    monkeypatch.setenv("METABENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(C.COMPILE_CACHE_ENV, raising=False)
    monkeypatch.delenv(VERIFY_ENV, raising=False)
    return tmp_path / "cache"
