"""mailtriage: a knowledge base and inference engine that explains mail-flow failures.

`from mailtriage import Engine, diagnose_text` gives the engine and the library verbs (see
`triage.py`); the imports are lazy so that the
command line does not pay for it when it does not need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Engine", "MailtriageError", "diagnose_facts", "diagnose_text", "scan_row", "scan_rows"]

if TYPE_CHECKING:
    from .engine import Engine
    from .errors import MailtriageError
    from .triage import diagnose_facts, diagnose_text, scan_row, scan_rows

_LAZY = {
    "Engine": ".engine",
    "MailtriageError": ".errors",
    "diagnose_facts": ".triage",
    "diagnose_text": ".triage",
    "scan_row": ".triage",
    "scan_rows": ".triage",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module, __name__), name)
