"""Where the bundled knowledge base and its schemas live, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_rules_dir() -> Path:
    """The bundled rules: `mailtriage/_rules` in a wheel, `rules/` at the top of a checkout."""
    installed = _PACKAGE_DIR / "_rules"
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent.parent / "rules"


def schema_path(name: str) -> Path:
    """Path of one of the bundled JSON Schemas (`rule`, `facts`, `translation`)."""
    return bundled_rules_dir() / "schema" / f"{name}.schema.json"
