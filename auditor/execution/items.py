"""Work items: one version × estimator × behaviour set × estimator config, addressable by hash.

An item carries everything a worker needs as plain data: the lineage as JSON, the folder its
checkpoints live in (as a URI) and every checkpoint's URI and sha256 — never tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from auditor.errors import CheckpointError
from auditor.hashing import config_hash
from auditor.lineage.models import ModelVersion

RUN_KIND = "attribution"


@dataclass(frozen=True)
class WorkItem:
    key: str
    version_json: str
    root_uri: str
    checkpoints: tuple[tuple[str, str], ...]
    task: str
    behaviours: str
    estimator: str
    estimator_config_hash: str
    settings: dict[str, Any] = field(default_factory=dict, hash=False)
    inputs_digest: str = ""  # task/behaviour code and probe data (auditor.execution.inputs)

    def run_config(self) -> dict[str, Any]:
        """The config of the run that stores this item's rows (no paths, no times): its
        ``config_hash`` identifies the item, so a stored item is found again on resume."""
        return {"work_item": "attribution/1", "version": self.key, "task": self.task,
                "behaviours": self.behaviours, "estimator": self.estimator,
                "estimator_config_hash": self.estimator_config_hash, "settings": self.settings,
                "checkpoints": [list(pair) for pair in self.checkpoints],
                "inputs_digest": self.inputs_digest}

    @cached_property  # read several times per item; the item is frozen
    def item_hash(self) -> str:
        return config_hash(self.run_config())

    @property
    def label(self) -> str:
        return f"{self.key} {self.estimator} {self.behaviours.rsplit(':', 1)[0].rsplit('.', 1)[-1]}"


def make_item(version: ModelVersion, root: str | Path, *, task: str, behaviours: str,
              estimator: str, estimator_config_hash: str,
              settings: dict[str, Any] | None = None, inputs_digest: str = "") -> WorkItem:
    refs = [(ref.uri, ref.sha256) for ref in version.checkpoint_refs()]
    return WorkItem(key=version.key, version_json=version.model_dump_json(),
                    root_uri=Path(root).resolve().as_uri(), checkpoints=tuple(refs), task=task,
                    behaviours=behaviours, estimator=estimator,
                    estimator_config_hash=estimator_config_hash, settings=dict(settings or {}),
                    inputs_digest=inputs_digest)


def root_path(uri: str) -> Path:
    """The local folder of a checkpoint root URI (``file://`` or a plain path; object stores are
    mounted as shared folders, see deploy/README.md)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else uri)
    raise CheckpointError(f"checkpoint root {uri} is not a local or mounted folder; mount the "
                          "shared checkpoint storage on every worker and record that path")
