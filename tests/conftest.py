"""Shared fixtures: paths to sample data and a loaded engine (built once per session)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mailtriage import Engine

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
ROOT = TESTS.parent
RULES = ROOT / "rules"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests must not read or write the user's cache, nor pick up their extra rule folders.
    monkeypatch.setenv("MAILTRIAGE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("MAILTRIAGE_RULES", raising=False)


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The engine on the bundled rules (durable-rules backend), loaded once for the session."""
    from mailtriage import Engine

    return Engine.load(use_cache=False)
