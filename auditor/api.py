"""The library API: the only place that composes the rooms (lineage, store, estimators, ...).

The CLI is a thin layer over these functions; so are the tests of the whole system.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from auditor.errors import InputError
from auditor.lineage.io import read_lineage_json, write_lineage_json
from auditor.lineage.models import ModelVersion
from auditor.lineage.recorder import LINEAGE_FILE


def open_store(db: str | Path, *, read_only: bool = False, wait: float = 0.0):
    from auditor.store import Store

    return Store.open(db, read_only=read_only, wait=wait)


def import_lineage(spec: str | Path, *, db: str | Path, wait: float = 0.0,
                   out: str | Path | None = None) -> ModelVersion:
    """Import a lineage.yaml of a model trained elsewhere and add it to the store."""
    from auditor.lineage.importer import import_lineage as parse

    version = parse(spec)
    if out is not None:
        write_lineage_json(version, out)
    add_version(version, Path(spec).resolve().parent, db=db, wait=wait)
    return version


def add_version(version: ModelVersion, root: str | Path, *, db: str | Path,
                wait: float = 0.0) -> None:
    """Store a recorded or imported lineage; ``root`` is the folder its checkpoint URIs are in."""
    with open_store(db, wait=wait) as store, store.transaction():
        store.add_version(version, source=str(Path(root).resolve()))


def record_lineage(folder: str | Path, *, db: str | Path, wait: float = 0.0) -> ModelVersion:
    """Add a Recorder's output folder (lineage.json + checkpoints) to the store."""
    folder = Path(folder)
    version = read_lineage_json(folder / LINEAGE_FILE)
    add_version(version, folder, db=db, wait=wait)
    return version


def load_version(source: str, *, db: str | Path) -> ModelVersion:
    """A lineage from a file or folder path, else from the store by MODEL@VERSION."""
    path = Path(source)
    if path.is_dir():
        path = path / LINEAGE_FILE
    if path.is_file():
        return read_lineage_json(path)
    with open_store(db, read_only=True) as store:
        return store.get_version(source)


def version_source(key: str, *, db: str | Path) -> tuple[ModelVersion, Path]:
    """A stored version and the folder its checkpoint URIs are relative to."""
    from auditor.store.versions import split_key

    model, _ = split_key(key)
    with open_store(db, read_only=True) as store:
        version = store.get_version(key)
        info = next(i for i in store.list_versions(model=model) if i.key == key)
    return version, Path(info.source or ".")


@dataclass(frozen=True)
class Remediation:
    original: str
    remediated: str
    dropped_stage: str
    folder: Path
    before: dict[str, float]
    after: dict[str, float]


def remediate(key: str, stage_id: str, *, db: str | Path, behaviours: str,
              new_version: str | None = None, out: str | Path | None = None,
              wait: float = 0.0) -> Remediation:
    """Re-run the later stages without ``stage_id``, record the result as a new version, and
    measure every behaviour before and after on its held-out probes."""
    from auditor.behaviours.library import load_behaviours
    from auditor.lineage.counterfactual import load_model
    from auditor.lineage.remediate import drop_stage
    from auditor.task import load_task

    version, root = version_source(key, db=db)
    if not version.task:
        raise InputError(f"{key} names no training task, so its stages cannot be re-run")
    task, measured = load_task(version.task), load_behaviours(behaviours)
    new_version = new_version or f"{version.version}-no-{stage_id}"
    folder = Path(out) if out else root.parent / f"{version.model}-{new_version}"
    new = drop_stage(version, root, task, stage_id, folder, new_version)
    before = load_model(task, version, root, version.stages[-1].theta_end)
    after = load_model(task, new, folder, new.stages[-1].theta_end)
    result = Remediation(key, new.key, stage_id, folder,
                         {b.name: b.measure(before) for b in measured},
                         {b.name: b.measure(after) for b in measured})
    with open_store(db, wait=wait) as store, store.transaction():
        store.add_version(new, source=str(folder.resolve()))
        store.record_run("remediation", {"from": key, "to": new.key, "dropped_stage": stage_id,
                                         "before": result.before, "after": result.after})
    return result


# --- reports (auditor/report) ---

def _signer_settings(p12, key, cert, chain, passphrase_env, passphrase_file, tsa_url):
    from auditor.report.sign import SignerSettings

    if p12 is None and key is None and cert is None:
        return None
    return SignerSettings(p12=Path(p12) if p12 else None, key=Path(key) if key else None,
                          cert=Path(cert) if cert else None,
                          chain=tuple(Path(c) for c in chain or ()),
                          passphrase_env=passphrase_env,
                          passphrase_file=Path(passphrase_file) if passphrase_file else None,
                          tsa_url=tsa_url)


def make_report(*, db: str | Path, out_dir: str | Path, version: str | None = None,
                period: str | None = None, p12: str | Path | None = None,
                key: str | Path | None = None, cert: str | Path | None = None,
                chain: tuple[str | Path, ...] = (), passphrase_env: str | None = None,
                passphrase_file: str | Path | None = None, tsa_url: str | None = None,
                html: bool = True, policy_file: str | Path | None = None, wait: float = 0.0):
    """Render the release-gate report of ``version`` or the quarterly report of ``period``
    (PDF/A-3b with embedded evidence, plus an HTML twin), sign it when a key is given, and record
    it in the store. Returns a ``ReportResult(pdf, html, sha256, ...)``."""
    from auditor.report.make import make_report as make

    signing = _signer_settings(p12, key, cert, chain, passphrase_env, passphrase_file, tsa_url)
    with open_store(db, wait=wait) as store:
        return make(store, out_dir, version=version, period=period, signing=signing,
                    write_html=html, policy_file=policy_file)


def verify_report(pdf: str | Path, *, trust: str | Path | None = None,
                  db: str | Path | None = None):
    """Check a report's signature (intact, valid, trusted, whole file), its embedded files
    against the cover, and with ``db`` its evidence against the store. Returns a
    ``VerificationResult`` (``.valid``, ``.checks``)."""
    from auditor.report.verify import verify_report as verify

    return verify(pdf, trust=trust, db=db)


def init_keys(folder: str | Path, *, demo: bool = False, name: str = "auditor signer",
              organisation: str = "auditor", passphrase: bytes | None = None,
              force: bool = False):
    """Create a self-signed CA (root.pem) and a signing identity (signer.pem, signer.key.pem,
    signer.p12) in ``folder``; ``demo`` marks a throwaway identity."""
    from auditor.report.keys import init_keys as init

    return init(folder, demo=demo, name=name, organisation=organisation, passphrase=passphrase,
                overwrite=force)
