"""auditor: which training stage is responsible for a model's behaviour, and by how much."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Recorder", "__version__"]


def __getattr__(name: str):
    # Keep `import auditor` light: torch is only imported when the recorder is used.
    if name == "Recorder":
        from auditor.lineage.recorder import Recorder

        return Recorder
    raise AttributeError(name)
