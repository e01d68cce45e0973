"""What ``auditor`` and ``auditor.api`` export: pinned, resolvable, and typed."""

from __future__ import annotations

import inspect

import auditor
from auditor import api

AUDITOR_EXPORTS = ["Recorder", "__version__"]
API_FUNCTIONS = ["import_lineage", "add_version", "record_lineage", "load_version",
                 "version_source", "open_store", "remediate", "make_executor", "run_audit",
                 "attribute_version", "gate", "certified_gate", "check_policy", "signer_settings", "make_report",
                 "verify_report", "init_keys", "renew_crl"]
API_TYPES = ["AuditSpec", "AuditSummary", "CertifySummary", "GateResult", "KeyFiles", "LoadedPolicy",
             "ModelVersion", "Remediation", "ReportResult", "SignerSettings", "Store",
             "VerificationResult"]


def test_auditor_exports_are_pinned():
    assert auditor.__all__ == AUDITOR_EXPORTS
    assert auditor.Recorder.__name__ == "Recorder"


def test_api_exports_are_pinned_and_resolve():
    assert api.__all__ == API_FUNCTIONS + API_TYPES
    for name in API_TYPES:
        assert inspect.isclass(getattr(api, name)), name
    public = sorted(n for n, f in vars(api).items()
                    if inspect.isfunction(f) and not n.startswith("_") and f.__module__ == api.__name__)
    assert public == sorted(API_FUNCTIONS)


def test_every_api_function_declares_its_return_type():
    missing = [name for name in API_FUNCTIONS
               if inspect.signature(getattr(api, name)).return_annotation is inspect.Parameter.empty]
    assert not missing, missing


def test_signer_settings_is_none_without_an_identity(tmp_path):
    assert api.signer_settings(passphrase_env="X") is None
    settings = api.signer_settings(p12=str(tmp_path / "a.p12"), chain=(str(tmp_path / "ca.pem"),))
    assert settings == api.SignerSettings(p12=tmp_path / "a.p12", chain=(tmp_path / "ca.pem",))
