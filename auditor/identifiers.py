"""Identifiers that policies match: normalised, then restricted to a small ASCII grammar.

A policy selects stages by kind, id and dataset tag, and waives by ``MODEL@VERSION``; text that
only *looks* like a selected value (a non-ASCII hyphen, fullwidth letters, a zero-width space, a
trailing space, other case) must not slip past it. So every such value is, wherever it enters
(lineage import, the Recorder, a stored lineage read back, a policy file):

1. normalised: Unicode NFKC (fullwidth and compatibility forms become ASCII), invisible format
   characters removed (zero-width spaces and joiners, the byte-order mark, bidi marks), every
   dash, minus sign or soft hyphen (U+2010–U+2015, U+2212, U+FE63, U+00AD, ...) made ``-``, surrounding whitespace
   stripped;
2. for *labels* (stage kinds, dataset tags) also case-folded: ``Fine-Tune`` is ``fine-tune``;
3. restricted: the result must be ASCII letters, digits, ``_``, ``.`` and ``-`` (a label:
   lower case, starting with a letter or digit). What still is not (a Cyrillic ``е`` in
   ``fine-tunе``) is refused with the character named, never guessed at.

Model, version and stage ids keep their case (they are names people read), but a policy's
comparisons of stage ids are case-insensitive (``same_id``). Docs: docs/lineage-import.md.
"""

from __future__ import annotations

import re
import unicodedata

_DASHES = {"\u00ad", "\u2212", "\u2043", "\u02d7", "\u2796", "\ufe63", "\uff0d", "\u2011"}
IDENTIFIER = re.compile(r"^[A-Za-z0-9_.\-]+$", re.ASCII)
LABEL = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$", re.ASCII)
MAX_LENGTH = 200


def normalise(text: str) -> str:
    """NFKC, invisible format characters dropped, dashes made '-', outer whitespace stripped."""
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cf" and ch not in _DASHES:  # zero-width space/joiners, BOM, bidi marks
            continue
        out.append("-" if category == "Pd" or ch in _DASHES else ch)
    return "".join(out).strip()


def _refuse(what: str, original: str, value: str, grammar: str) -> ValueError:
    bad = next((ch for ch in value if not (ch.isascii() and (ch.isalnum() or ch in "_.-"))),
               None)
    where = (f": {bad!r} (U+{ord(bad):04X} {unicodedata.name(bad, 'unnamed')}) is not allowed"
             if bad else "")
    return ValueError(f"{what} {original!r} must be {grammar} after normalisation{where}")


def identifier(text: str, what: str = "identifier") -> str:
    """A model, version or stage id: normalised, case kept, ``[A-Za-z0-9_.-]+``."""
    if not isinstance(text, str):
        return text  # pydantic reports the type error
    value = normalise(text)
    if not IDENTIFIER.match(value) or len(value) > MAX_LENGTH:
        raise _refuse(what, text, value, "ASCII letters, digits, '_', '.' or '-' "
                      f"(1 to {MAX_LENGTH} characters)")
    return value


def label(text: str, what: str = "label") -> str:
    """A stage kind or dataset tag: normalised, case-folded, ``[a-z0-9][a-z0-9_.-]*``."""
    if not isinstance(text, str):
        return text
    value = normalise(text).casefold()
    if not LABEL.match(value) or len(value) > MAX_LENGTH:
        raise _refuse(what, text, value, "lower-case ASCII letters, digits, '_', '.' or '-'")
    return value


def match_key(text: str | None) -> str | None:
    """The form two values are compared in (never raises: stored text of any vintage)."""
    return None if text is None else normalise(text).casefold()


def same_id(a: str | None, b: str | None) -> bool:
    return match_key(a) == match_key(b)
