"""Make a report: build the context from the store, render HTML and PDF/A-3b, sign, record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from auditor.errors import ReportError
from auditor.hashing import sha256_bytes
from auditor.report.context import ReportContext, build_context
from auditor.report.render import embedded_files, html_to_pdf, render_html
from auditor.report.sign import SignerSettings, is_demo, load_signer, sign_pdf, signer_name


@dataclass(frozen=True)
class ReportResult:
    pdf: Path
    html: Path | None
    sha256: str
    report_id: str
    verdict: str
    signer: str
    signed: bool


def _file_stem(context: ReportContext) -> str:
    subject = context.subject.replace("@", "-").replace("/", "-")
    return f"report-{context.kind}-{subject}"


def _policy(policy_file: str | Path | None) -> tuple[str, bytes] | None:
    if policy_file is None:
        return None
    path = Path(policy_file)
    try:
        return path.name, path.read_bytes()
    except OSError as exc:
        raise ReportError(f"cannot read the policy file {path}: {exc.strerror}") from None


def render_report(store, *, version: str | None = None, period: str | None = None,
                  signer=None, policy_file: str | Path | None = None,
                  tsa_url: str | None = None):
    """(context, html, pdf bytes): the PDF signed when ``signer`` is given. The store must
    verify first (TamperError otherwise): a report is never made from unverified evidence."""
    store.require_verified("make a report")
    context = build_context(store, version=version, period=period,
                            demo=bool(signer and is_demo(signer)))
    if signer is not None:
        context.signer = signer_name(signer)
    files = embedded_files(context, _policy(policy_file))
    html = render_html(context, files)
    pdf = html_to_pdf(html, files, context.report_id)
    if signer is not None:
        pdf = sign_pdf(pdf, signer, tsa_url=tsa_url)
    return context, html, pdf


def make_report(store, out_dir: str | Path, *, version: str | None = None,
                period: str | None = None, signing: SignerSettings | None = None,
                write_html: bool = True, policy_file: str | Path | None = None) -> ReportResult:
    signer = load_signer(signing) if signing is not None else None
    context, html, pdf = render_report(store, version=version, period=period, signer=signer,
                                       policy_file=policy_file,
                                       tsa_url=signing.tsa_url if signing else None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pdf_path = out / f"{_file_stem(context)}.pdf"
    pdf_path.write_bytes(pdf)
    html_path = None
    if write_html:
        html_path = pdf_path.with_suffix(".html")
        html_path.write_text(_standalone(html), encoding="utf-8")
    digest = sha256_bytes(pdf)
    if not store.read_only:
        with store.transaction():
            store.add_report(context.kind, str(pdf_path), digest, context.signer,
                             report_id=context.report_id)
    return ReportResult(pdf_path, html_path, digest, context.report_id, context.verdict,
                        context.signer, signer is not None)


def _standalone(html: str) -> str:
    """The HTML twin with its stylesheet inlined, so it opens anywhere on its own."""
    from auditor.paths import templates_dir

    css = (templates_dir() / "report.css").read_text(encoding="utf-8")
    return html.replace('<link rel="stylesheet" href="report.css">', f"<style>\n{css}</style>")
