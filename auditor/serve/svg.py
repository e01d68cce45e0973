"""Charts made fit for the dashboard's Content-Security-Policy.

matplotlib writes an SVG's styling as ``style="..."`` attributes and one ``<style>`` element; the
dashboard's policy (``style-src 'self'``) lets no inline style apply, so a chart drew black
shapes and default-sized text. Every SVG style property matplotlib uses is also a presentation
attribute, which the policy does not govern: ``style="fill: #fff; stroke-width: 0.5"`` becomes
``fill="#fff" stroke-width="0.5"``, and the ``<style>`` element's two defaults move onto the
``<svg>`` element (they are inherited). The report's PDF keeps matplotlib's own output.
"""

from __future__ import annotations

import re
from html import escape

_STYLE = re.compile(r' style="([^"]*)"')
_SHEET = re.compile(r"<style[^>]*>\*\{([^}]*)\}</style>")


def _attributes(declarations: str) -> str:
    found: dict[str, str] = {}
    for part in declarations.split(";"):
        name, colon, value = part.partition(":")
        name, value = name.strip(), value.strip()
        if colon and re.fullmatch(r"[a-z-]+", name):
            found[name] = value  # a later declaration wins, as in CSS
    return "".join(f' {name}="{escape(value, quote=True)}"' for name, value in found.items())


def without_inline_css(svg: str) -> str:
    sheet = _SHEET.search(svg)
    if sheet:
        svg = svg[:sheet.start()] + svg[sheet.end():]
        svg = svg.replace("<svg ", f"<svg{_attributes(sheet.group(1))} ", 1)
    return _STYLE.sub(lambda match: _attributes(match.group(1)), svg)
