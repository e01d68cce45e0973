"""Where the shipped templates and policies live, editable checkout or installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    checkout = _PACKAGE.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"auditor's {name}/ folder is missing from the installation")


def templates_dir() -> Path:
    return _data_dir("templates")


def policies_dir() -> Path:
    return _data_dir("policies")
