"""mailtriage: a knowledge base and inference engine that explains mail-flow failures.

`from mailtriage import Engine` gives the diagnosis engine; the import is lazy so that the
command line does not pay for it when it does not need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Engine"]

if TYPE_CHECKING:
    from .engine import Engine


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from .engine import Engine

        return Engine
    raise AttributeError(name)
