"""Stable URLs of the dashboard's pages (every stored name percent-encoded)."""

from __future__ import annotations

from urllib.parse import quote


def version_url(model: str, version: str) -> str:
    return f"/versions/{quote(model, safe='')}/{quote(version, safe='')}"


def key_url(key: str) -> str:
    model, _, version = key.partition("@")
    return version_url(model, version)
