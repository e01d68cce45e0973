"""Third-party loggers that auditor keeps quiet unless someone configured them."""

from __future__ import annotations

import logging

# pyHanko logs tracebacks for untrusted or broken signatures and WeasyPrint/fontTools warn about
# fonts: auditor's own results and one-line errors say it all.
NOISY = ("pyhanko", "pyhanko_certvalidator", "weasyprint", "fontTools")


def quiet_by_default(names: tuple[str, ...] = NOISY, level: int = logging.CRITICAL) -> None:
    """Raise these loggers to ``level`` unless a level was set already (the CLI sets DEBUG
    for ``--verbose``; an application may set its own)."""
    for name in names:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)
