"""auditor.store: the DuckDB file holding lineage, scores, policy results and the event log."""

from auditor.store.events import Event
from auditor.store.store import Store
from auditor.store.verify import LogVerification
from auditor.store.versions import VersionInfo

__all__ = ["Event", "LogVerification", "Store", "VersionInfo"]
