"""Render a report context to HTML (Jinja2) and to PDF/A-3b (WeasyPrint) with the evidence
embedded as attachments, whose SHA-256 the cover prints.

Attachments are embedded *before* signing: anything added afterwards breaks the signature.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any

from auditor.errors import ReportError
from auditor.hashing import sha256_bytes
from auditor.logs import quiet_by_default
from auditor.paths import templates_dir
from auditor.report import charts
from auditor.report.context import ReportContext

# PDF/A-3a: archival (PDF/A-3) *and* tagged (structure tree, document language, alt text on
# every chart), so screen readers and PDF/UA checkers can read the report; embedded files stay
# associated files. Tagging costs about a tenth of WeasyPrint's time.
PDF_VARIANT = "pdf/a-3a"
ATTACHMENTS_META = "auditor-attachments"
# Each attachment has a fixed name that says its role: a user's file (the policy) is embedded
# under its role's name, never its own, so no file name can pose as the evidence.
EVIDENCE_NAME = "evidence.json"
REPORT_ID_META = "auditor-report-id"
_SCORE_COLUMNS = ("run_id", "model", "version", "stage_index", "stage_id", "stage_kind",
                  "behaviour", "direction", "estimator", "estimator_version", "convention",
                  "config_hash", "effect", "share", "metric_value")


@dataclass(frozen=True)
class EmbeddedFile:
    name: str
    data: bytes
    description: str
    mime: str

    @property
    def sha256(self) -> str:
        return sha256_bytes(self.data)


def _json_bytes(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode()


def _scores_csv(context: ReportContext) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_SCORE_COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for version in context.versions:
        writer.writerows(version.evidence["stage_scores"])
    return out.getvalue().encode()


def _lineage(context: ReportContext) -> dict[str, Any]:
    if len(context.versions) == 1:
        return context.versions[0].prov
    return {v.key: v.prov for v in context.versions}


def _policy_from_rules(context: ReportContext) -> bytes:
    """No policy file was given or stored: the rules as evaluated, one document per policy."""
    policies: dict[str, Any] = {}
    for version in context.versions:
        view = version.policy
        if view["policy_hash"]:
            policies.setdefault(view["policy_hash"], {
                "id": view["policy_id"], "version": view["policy_version"],
                "hash": view["policy_hash"], "rules": view["thresholds"],
                "note": "reconstructed from the stored policy results"})
    return _json_bytes(list(policies.values()))


def policy_file(context: ReportContext, policy: tuple[str, bytes] | None) -> EmbeddedFile:
    if policy is not None:
        name, data = policy
        if name.lower().endswith(".json"):
            return EmbeddedFile("policy.json", data, "the policy file the versions were gated "
                                "on", "application/json")
        return EmbeddedFile("policy.yaml", data, "the policy file the versions were gated on",
                            "application/yaml")
    for version in context.versions:
        for run in version.runs:
            text = run["config"].get("policy_text")
            if isinstance(text, str):
                return EmbeddedFile("policy.yaml", text.encode(), "the policy file, as stored "
                                    "with the policy run", "application/yaml")
    return EmbeddedFile("policy.json", _policy_from_rules(context),
                        "the policy rules as evaluated", "application/json")


def embedded_files(context: ReportContext,
                   policy: tuple[str, bytes] | None = None) -> list[EmbeddedFile]:
    return [
        EmbeddedFile(EVIDENCE_NAME, _json_bytes(context.evidence()),
                     "verdicts, scores, policy results and thresholds", "application/json"),
        EmbeddedFile("lineage.prov.json", _json_bytes(_lineage(context)),
                     "development lineage as W3C PROV-JSON", "application/json"),
        policy_file(context, policy),
        EmbeddedFile("scores.csv", _scores_csv(context), "stage scores", "text/csv"),
        EmbeddedFile("environment.json", _json_bytes(context.environment),
                     "package versions and platform", "application/json"),
    ]


def _jinja():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                             autoescape=jinja2.select_autoescape(("html", "j2")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.globals.update(heatmap=charts.heatmap, bars=charts.bars, trend=charts.trend)
    env.filters["num"] = _num
    env.filters["effect"] = _effect
    env.filters["short"] = lambda text, n=12: (text or "-")[:n]
    return env


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _effect(value: Any, digits: int = 4) -> str:
    """An effect or total, with NaN (``None`` in evidence rows) and ±Inf spelled out."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN (not a number)"
    if isinstance(value, float) and math.isinf(value):
        return f"{'+' if value > 0 else '-'}Inf (not finite)"
    return _num(value, digits)


def render_html(context: ReportContext, files: list[EmbeddedFile]) -> str:
    context.attachments = [{"name": f.name, "sha256": f.sha256, "description": f.description,
                            "size": str(len(f.data))} for f in files]
    manifest = ";".join(f"{f.name}={f.sha256}" for f in files)
    try:
        template = _jinja().get_template("report.html.j2")
        return template.render(ctx=context, manifest=manifest, meta_name=ATTACHMENTS_META,
                               id_meta=REPORT_ID_META)
    except Exception as exc:  # jinja2.TemplateError and errors raised inside filters
        raise ReportError(f"cannot render the report template: {exc}") from exc


def html_to_pdf(html: str, files: list[EmbeddedFile], report_id: str) -> bytes:
    """PDF/A-3b bytes with ``files`` embedded as associated files."""
    from weasyprint import HTML, Attachment

    quiet_by_default()
    attachments = [Attachment(string=f.data, name=f.name, description=f.description,
                              relationship="Data") for f in files]
    return HTML(string=html, base_url=str(templates_dir())).write_pdf(
        pdf_variant=PDF_VARIANT, pdf_identifier=report_id.encode(), attachments=attachments,
        custom_metadata=True, uncompressed_pdf=True, finisher=_compress_streams)


def _compress_streams(document, pdf) -> None:
    """Deflate every stream that has no filter yet, and leave the other objects outside object
    streams (``uncompressed_pdf=True`` above).

    WeasyPrint's compressed mode packs every non-stream object (7,000+ structure elements in a
    tagged quarterly report) into one object stream, and pyHanko, which a verifier runs, parses
    that stream's header again for each object it reads: validating a B-LT report took minutes.
    Plain objects make it ~60x faster to walk, for a file about 3x larger (docs/reports.md)."""
    import pydyf

    for item in pdf.objects:
        if isinstance(item, pydyf.Stream) and "Filter" not in item.extra:
            item.compress = True
