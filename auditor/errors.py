"""One error hierarchy. Every error carries a message a user can act on.

The CLI maps ``AuditorError`` to a one-line message and exit code 2 in one place
(``auditor.cli``). Outcomes such as a failed policy rule are *data*, never exceptions.
"""

from __future__ import annotations


class AuditorError(Exception):
    """Base class: something the user can fix (bad input, missing file, locked store)."""

    exit_code = 2


class InputError(AuditorError):
    """A user file (lineage, policy, audit spec) is malformed.

    ``location`` is "file:line" when known, ``key`` the offending key path.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 key: str | None = None):
        self.path, self.line, self.key = path, line, key
        where = ""
        if path:
            where = f"{path}:{line}" if line else str(path)
        if key:
            where = f"{where}: {key}" if where else key
        super().__init__(f"{where}: {message}" if where else message)


class LineageError(InputError):
    """A lineage file or recorded lineage is inconsistent."""


class CheckpointError(AuditorError):
    """A checkpoint is missing, unreadable, unsafe, or does not match its sha256."""


class StoreError(AuditorError):
    """The DuckDB store cannot be opened or written (locked, newer schema, corrupt)."""


class StoreLockedError(StoreError):
    """Another process holds the write lock on the store file."""


class TamperError(StoreError):
    """The hash-chained event log does not verify."""


class EstimatorError(AuditorError):
    """An estimator cannot run on this lineage (missing logs, unsupported optimizer)."""


class PolicyError(InputError):
    """A policy file is malformed."""


class ExecutionError(AuditorError):
    """Work items failed beyond their retries."""


class ReportError(AuditorError):
    """A report cannot be rendered, signed or verified."""


class SigningError(ReportError):
    """Signing keys are missing, have a wrong passphrase, or an unusable certificate."""
