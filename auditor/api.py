"""The library API: the only place that composes the rooms (lineage, store, estimators, ...).

The CLI is a thin layer over these functions; so are the tests of the whole system. Every
function returns a typed result, and the result types are importable from here (``__all__``;
tests/test_public_api.py pins the list). Importing this module stays light: the rooms (torch,
DuckDB, Ray, WeasyPrint) are imported by the functions that use them, and the result types on
first access.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.errors import InputError
from auditor.lineage.io import LINEAGE_FILE, read_lineage_json, write_lineage_json
from auditor.lineage.models import ModelVersion
from auditor.report.sign import SignerSettings

if TYPE_CHECKING:
    from auditor.certify.service import CertifySummary
    from auditor.execution.driver import AuditSummary
    from auditor.execution.outcome import Executor
    from auditor.execution.spec import AuditSpec, ReplaySettings
    from auditor.policy.load import LoadedPolicy
    from auditor.policy.outcomes import GateResult
    from auditor.report.keys import KeyFiles
    from auditor.report.make import ReportResult
    from auditor.report.verify import VerificationResult
    from auditor.store import Store

__all__ = [
    # functions, in the order of the pipeline
    "import_lineage", "add_version", "record_lineage", "load_version", "version_source",
    "open_store", "remediate", "make_executor", "run_audit", "attribute_version", "gate",
    "certified_gate", "check_policy", "signer_settings", "make_report", "verify_report", "init_keys",
    "renew_crl",
    # what they take and return
    "AuditSpec", "AuditSummary", "CertifySummary", "GateResult", "KeyFiles", "LoadedPolicy", "ModelVersion",
    "Remediation", "ReportResult", "SignerSettings", "Store", "VerificationResult",
]

# result types re-exported lazily: name -> module that defines it
_LAZY = {
    "AuditSpec": "auditor.execution.spec",
    "AuditSummary": "auditor.execution.driver",
    "CertifySummary": "auditor.certify.service",
    "GateResult": "auditor.policy.outcomes",
    "KeyFiles": "auditor.report.keys",
    "LoadedPolicy": "auditor.policy.load",
    "ReportResult": "auditor.report.make",
    "Store": "auditor.store",
    "VerificationResult": "auditor.report.verify",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'auditor.api' has no attribute {name!r}")


def open_store(db: str | Path, *, read_only: bool = False, wait: float = 0.0) -> Store:
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
    """Add a Recorder's output folder (lineage.json + checkpoints) to the store, after checking
    every checkpoint's hash and that it holds no NaN or Inf."""
    from auditor.lineage.checkpoints import load_tensors

    folder = Path(folder)
    version = read_lineage_json(folder / LINEAGE_FILE)
    for ref in version.checkpoint_refs():
        load_tensors(ref, folder)
    from auditor.lineage.continuation import check_declared_changes

    check_declared_changes(version, folder)  # a declared model change explains its tensors
    add_version(version, folder, db=db, wait=wait)
    return version


def load_version(source: str, *, db: str | Path, wait: float = 0.0) -> ModelVersion:
    """A lineage from a file or folder path, else from the store by MODEL@VERSION."""
    path = Path(source)
    if path.is_dir():
        path = path / LINEAGE_FILE
    if path.is_file():
        return read_lineage_json(path)
    with open_store(db, read_only=True, wait=wait) as store:
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
              wait: float = 0.0, allow_tasks: tuple[str, ...] = ()) -> Remediation:
    """Re-run the later stages without ``stage_id``, record the result as a new version, and
    measure every behaviour before and after on its held-out probes."""
    from auditor.behaviours.library import load_behaviours
    from auditor.lineage.counterfactual import load_model
    from auditor.lineage.remediate import drop_stage
    from auditor.task import allowed_modules, load_task

    version, root = version_source(key, db=db)
    if not version.task:
        raise InputError(f"{key} names no training task, so its stages cannot be re-run")
    task = load_task(version.task, allowed=allowed_modules([behaviours], allow_tasks),
                     source=f"the lineage of {key}")
    measured = load_behaviours(behaviours)
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


# --- audits: many versions, local or on Ray (auditor/execution) -----------------------------

def make_executor(kind: str = "local", *, address: str | None = None,
                  num_cpus: int | None = None, num_gpus: float | None = None,
                  max_retries: int = 3, max_in_flight: int | None = None) -> Executor:
    """A LocalExecutor, or a RayExecutor (Ray is imported only when it runs)."""
    if kind == "local":
        from auditor.execution.local import LocalExecutor

        return LocalExecutor()
    if kind == "ray":
        from auditor.execution.ray_executor import RayExecutor

        return RayExecutor(address, num_cpus=num_cpus, num_gpus=num_gpus,
                           max_retries=max_retries, max_in_flight=max_in_flight)
    raise InputError(f"executor must be local or ray, not {kind!r}")


def run_audit(spec_or_path: AuditSpec | str | Path, *, db: str | Path,
              period: str | None = None, executor: Any = None, address: str | None = None,
              num_gpus: float | None = None, max_retries: int | None = None,
              wait: float = 0.0, progress: bool = True, force: bool = False,
              say: Callable[[str], None] | None = None,
              allow_tasks: tuple[str, ...] = ()) -> AuditSummary:
    """Plan the audit, run the items not yet stored (local or Ray), write each item's rows in
    one transaction, and return an ``AuditSummary``. ``executor``: "local", "ray", an executor
    object (kept open), or None for the spec's choice. With the spec's ``replay`` section,
    every audited version then gets a certified gate on the spec's policy
    (``summary.certified``; docs/certify.md). ``force`` recomputes stored items."""
    from auditor.execution.driver import execute, summarise
    from auditor.execution.planner import plan_audit
    from auditor.execution.spec import AuditSpec, load_spec
    from auditor.hashing import config_hash

    spec = spec_or_path if isinstance(spec_or_path, AuditSpec) else load_spec(spec_or_path)
    if allow_tasks:
        spec = spec.model_copy(update={"allow_tasks": [*spec.allow_tasks, *allow_tasks]})
    runner, owned = _audit_executor(spec, executor, address, num_gpus, max_retries)
    try:
        with open_store(db, wait=wait) as store:
            plan = plan_audit(spec, store, period, force=force)
            written, failures = execute(plan, runner, store, progress=progress)
            _store_behaviour_definitions(store, plan.todo + plan.skipped)
            config = {"audit": spec.name, "spec_hash": config_hash(spec.model_dump(mode="json")),
                      "period": period or spec.versions.period, "executor": runner.name}
            summary = summarise(plan, store, written, failures, config)
            if spec.replay is not None and spec.replay.mode != "none" and not failures:
                _certify_audit(spec, plan, store, runner, summary, say, progress, force)
            return summary
    finally:
        if owned:
            runner.close()


def _store_behaviour_definitions(store: Store, items: list[Any]) -> None:
    """Store what every behaviour the audit measured is (docs/store.md), once per definition."""
    from auditor.execution.inputs import behaviour_definitions

    for behaviours in dict.fromkeys(item.behaviours for item in items):
        for definition in behaviour_definitions(behaviours) or ():
            store.add_behaviour(**definition)


def _certify_audit(spec: AuditSpec, plan: Any, store: Store, runner: Any, summary: AuditSummary,
                   say: Callable[[str], None] | None, progress: bool, force: bool) -> None:
    """A certified gate of every version of the audit, per estimator (docs/certify.md)."""
    from auditor.certify.costs import replay_all_is_cheaper
    from auditor.certify.service import certify_version
    from auditor.policy.load import load_policy

    loaded = load_policy(spec.policy)
    keys = list(dict.fromkeys(item.key for item in plan.skipped + plan.todo))
    for key in keys:
        steps = [stage.steps for stage in store.get_version(key).stages]
        for name in spec.estimators:
            settings = spec.replay
            message = replay_all_is_cheaper(name, spec.estimator_settings.get(name, {}), steps)
            if message:
                settings = settings.model_copy(update={"mode": "all"})
                if say is not None:
                    say(f"{key}: {message}")
            result, certified = certify_version(store, key, loaded, executor=runner,
                                                settings=settings, estimator=name,
                                                say=say, progress=progress, force=force,
                                                peers=keys)
            summary.certified.append((key, name, result, certified))


def _audit_executor(spec: AuditSpec, executor: Any, address: str | None,
                    num_gpus: float | None, max_retries: int | None) -> tuple[Any, bool]:
    if executor is not None and not isinstance(executor, str):
        return executor, False
    settings = spec.executor
    return make_executor(
        executor or settings.kind, address=address or settings.address,
        num_cpus=settings.num_cpus,
        num_gpus=num_gpus if num_gpus is not None else settings.num_gpus,
        max_retries=max_retries if max_retries is not None else settings.max_retries,
        max_in_flight=settings.max_in_flight), True


def attribute_version(key: str, *, db: str | Path, estimator: str = "aa",
                      behaviours: str | None = None, executor: Any = "local",
                      settings: dict[str, Any] | None = None,
                      model_factory: str | None = None, address: str | None = None,
                      num_gpus: float | None = None, max_retries: int = 3, wait: float = 0.0,
                      progress: bool = True,
                      allow_tasks: tuple[str, ...] = ()) -> AuditSummary:
    """Attribute one stored version's behaviours to its stages and store the scores."""
    from auditor.execution.spec import behaviour_sets, one_estimator_spec
    from auditor.store.versions import split_key

    behaviour_sets(behaviours, split_key(key)[0])  # a clear error when none are named
    spec = one_estimator_spec({"ids": [key]}, behaviours, estimator, settings,
                              name=f"attribute {key}", model_factory=model_factory)
    return run_audit(spec, db=db, executor=executor, address=address, num_gpus=num_gpus,
                     max_retries=max_retries, wait=wait, progress=progress,
                     allow_tasks=allow_tasks)


# --- policy and the release gate (auditor/policy) -------------------------------------------

def gate(key: str, *, db: str | Path, policy: LoadedPolicy | str | Path | None = None,
         estimator: str | None = None, allow_indeterminate: bool = False, wait: float = 0.0,
         today: date | None = None) -> GateResult:
    """Evaluate a policy (a path, a LoadedPolicy, or None for the shipped default) on version
    ``key``; the results and the verdict are recorded in the store in one transaction.
    Returns a ``GateResult`` (``.verdict``, ``.rows()``, ``.exit_code``)."""
    from auditor.errors import StoreError
    from auditor.policy.evaluate import gate as evaluate_gate
    from auditor.policy.load import LoadedPolicy, load_policy

    loaded = policy if isinstance(policy, LoadedPolicy) else load_policy(policy)
    if not Path(db).expanduser().exists():
        raise StoreError(f"no store at {db}: audit the version first")
    with open_store(db, wait=wait) as store:
        store.require_verified("gate a release")
        return evaluate_gate(store, key, loaded, estimator=estimator,
                             allow_indeterminate=allow_indeterminate, today=today)


def certified_gate(key: str, *, db: str | Path, policy: LoadedPolicy | str | Path | None = None,
                   estimator: str | None = None,
                   replay: ReplaySettings | dict[str, Any] | None = None,
                   executor: Any = "local", allow_indeterminate: bool = False,
                   wait: float = 0.0, today: date | None = None,
                   say: Callable[[str], None] | None = None, progress: bool = True,
                   force: bool = False) -> tuple[GateResult, CertifySummary]:
    """A certified gate (docs/certify.md): calibrate the estimate on replayed units, decide
    every row on its interval, replay the units close rows and estimated failures need
    (within ``replay.budget``), and record certified scores, the calibration and the results.
    ``replay``: a ``ReplaySettings`` or a dict of the audit spec's ``replay`` section.
    Returns (``GateResult``, ``CertifySummary``)."""
    from auditor.certify.service import certify_version
    from auditor.errors import StoreError
    from auditor.execution.spec import ReplaySettings
    from auditor.policy.load import LoadedPolicy, load_policy

    loaded = policy if isinstance(policy, LoadedPolicy) else load_policy(policy)
    settings = replay if isinstance(replay, ReplaySettings) else _replay_settings(replay)
    if not Path(db).expanduser().is_file():
        raise StoreError(f"no store at {db}: audit the version first")
    runner = make_executor(executor) if isinstance(executor, str) else executor
    try:
        with open_store(db, wait=wait) as store:
            return certify_version(store, key, loaded, executor=runner, settings=settings,
                                   estimator=estimator, today=today,
                                   allow_indeterminate=allow_indeterminate, say=say,
                                   progress=progress, force=force)
    finally:
        if isinstance(executor, str):
            runner.close()


def _replay_settings(data: dict[str, Any] | None) -> ReplaySettings:
    from auditor.execution.spec import ReplaySettings

    try:
        return ReplaySettings(**(data or {}))
    except ValueError as exc:
        raise InputError(f"bad replay settings: {exc}") from None


def check_policy(path: str | Path) -> LoadedPolicy:
    """Validate a policy file without running anything; raises PolicyError (file, line, key)."""
    from auditor.policy.load import load_policy

    return load_policy(path)


# --- signed reports and their verification (auditor/report) --------------------------------

def signer_settings(*, p12: str | Path | None = None, key: str | Path | None = None,
                    cert: str | Path | None = None, chain: tuple[str | Path, ...] = (),
                    passphrase_env: str | None = None,
                    passphrase_file: str | Path | None = None,
                    tsa_url: str | None = None, crls: tuple[str | Path, ...] = (),
                    archive: bool = False, level: str | None = None) -> SignerSettings | None:
    """The signing identity from command-line style values; None (unsigned) when neither
    ``p12`` nor ``key``/``cert`` is given. ``tsa_url``: PAdES B-T; ``crls``: B-LT;
    ``archive``: B-LTA; ``level`` ("B-B", "B-T", "B-LT", "B-LTA") asks for a level by name
    (B-LT finds the CRL ``keys init`` wrote beside the key; ``SignerSettings.at_level``)."""
    if p12 is None and key is None and cert is None:
        return None
    return SignerSettings(p12=Path(p12) if p12 else None, key=Path(key) if key else None,
                          cert=Path(cert) if cert else None,
                          chain=tuple(Path(c) for c in chain or ()),
                          passphrase_env=passphrase_env,
                          passphrase_file=Path(passphrase_file) if passphrase_file else None,
                          tsa_url=tsa_url, crls=tuple(Path(c) for c in crls or ()),
                          archive=archive, level=level)


def make_report(*, db: str | Path, out_dir: str | Path, version: str | None = None,
                period: str | None = None, signing: SignerSettings | None = None,
                html: bool = True, policy_file: str | Path | None = None,
                wait: float = 0.0, settings: str | Path | None = None) -> ReportResult:
    """Render the release-gate report of ``version`` or the quarterly report of ``period``
    (PDF/A-3b with embedded evidence, plus an HTML twin), sign it when ``signing`` is given
    (``signer_settings`` builds one), and record it in the store. ``settings`` is the report
    settings file (default: ./auditor.yaml when it exists); its ``signing:`` defaults
    (timestamp authority, CRLs, archive timestamp) apply where ``signing`` gives none."""
    from auditor.report.make import make_report as make
    from auditor.report.settings import load_document

    document = load_document(settings)
    if signing is not None:
        defaults = document.signing
        signing = replace(signing, tsa_url=signing.tsa_url or defaults.tsa_url,
                          crls=signing.crls or tuple(Path(c) for c in defaults.crl),
                          archive=signing.archive or defaults.archive).at_level()
    with open_store(db, wait=wait) as store:
        return make(store, out_dir, version=version, period=period, signing=signing,
                    write_html=html, policy_file=policy_file, settings=document.report)


def verify_report(pdf: str | Path, *, trust: str | Path | None = None,
                  db: str | Path | None = None, wait: float = 0.0,
                  integrity_only: bool = False, at: datetime | None = None) -> VerificationResult:
    """Check a report's signature (intact, valid, trusted, whole file), its embedded files
    against the cover, and with ``db`` its evidence against the store (waiting up to ``wait``
    seconds for a writer to let go of it). Without ``trust`` the report is invalid (signer NOT
    verified) unless ``integrity_only``. A timestamped signature is validated at its
    timestamp's time; ``at`` sets "now" otherwise (and for the timestamp itself). Returns a
    ``VerificationResult`` (``.valid``, ``.checks``, ``.signed_at``)."""
    from auditor.report.verify import verify_report as verify

    return verify(pdf, trust=trust, db=db, wait=wait, integrity_only=integrity_only, at=at)


def init_keys(folder: str | Path, *, demo: bool = False, name: str = "auditor signer",
              organisation: str = "auditor", passphrase: bytes | None = None,
              force: bool = False) -> KeyFiles:
    """Create a self-signed CA (root.pem, its key root.key.pem and first CRL root.crl) and a
    signing identity (signer.pem, signer.key.pem, signer.p12) in ``folder``; ``demo`` marks a
    throwaway identity."""
    from auditor.report.keys import init_keys as init

    return init(folder, demo=demo, name=name, organisation=organisation, passphrase=passphrase,
                overwrite=force)


def renew_crl(folder: str | Path, *, passphrase: bytes | None = None,
              revoke: tuple[int, ...] = ()) -> tuple[Path, int, int]:
    """Issue the next CRL of the CA ``keys init`` made in ``folder`` (root.crl), revoking
    ``revoke`` serials as well; returns (path, CRL number, serials revoked)."""
    from auditor.report.revocation import renew_crl as renew

    return renew(folder, passphrase=passphrase, revoke=revoke)
