"""The software environment a report was made in (embedded as environment.json)."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("auditor", "duckdb", "pyarrow", "numpy", "torch", "ray", "weasyprint", "pyhanko",
             "pyhanko-certvalidator", "cryptography", "jinja2", "pydantic", "typer", "matplotlib")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@lru_cache(maxsize=1)
def _commit() -> str:
    folder = Path(__file__).resolve().parents[2]
    try:
        result = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def environment() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(),
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "auditor_commit": _commit(),
            "packages": {name: _version(name) for name in _PACKAGES}}
