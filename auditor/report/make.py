"""Make a report: build the context from the store, render HTML and PDF/A-3b, sign, record."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from auditor.errors import ReportError
from auditor.hashing import sha256_bytes
from auditor.report.context import ReportContext, build_context
from auditor.report.render import embedded_files, html_to_pdf, render_html
from auditor.report.settings import ReportSettings
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
    return context.file_stem


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
                  tsa_url: str | None = None, long_term=None, settings=None):
    """(context, html, pdf bytes): the PDF signed when ``signer`` is given. The store must
    verify first (TamperError otherwise): a report is never made from unverified evidence."""
    store.require_verified("make a report")
    context = build_context(store, version=version, period=period,
                            demo=bool(signer and is_demo(signer)), settings=settings)
    if signer is not None:
        context.signer = signer_name(signer)
    files = embedded_files(context, _policy(policy_file))
    html = render_html(context, files)
    pdf = html_to_pdf(html, files, context.report_id)
    if signer is not None:
        pdf = sign_pdf(pdf, signer, tsa_url=tsa_url, long_term=long_term)
    return context, html, pdf


def make_report(store, out_dir: str | Path, *, version: str | None = None,
                period: str | None = None, signing: SignerSettings | None = None,
                write_html: bool = True, policy_file: str | Path | None = None,
                settings: ReportSettings | None = None) -> ReportResult:
    """``signing.tsa_url`` makes the signature PAdES B-T, ``signing.crls`` B-LT,
    ``signing.archive`` B-LTA; ``settings``: accountability and scope (report settings file)."""
    signer = load_signer(signing) if signing is not None else None
    context, html, pdf = render_report(store, version=version, period=period, signer=signer,
                                       policy_file=policy_file,
                                       tsa_url=signing.tsa_url if signing else None,
                                       long_term=signing.long_term() if signing else None,
                                       settings=settings)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the report folder {out}: {exc.strerror}") from None
    pdf_path = out / f"{_file_stem(context)}.pdf"
    html_path = pdf_path.with_suffix(".html") if write_html else None
    outputs = [(pdf_path, pdf)]
    if html_path is not None:
        outputs.append((html_path, _standalone(html).encode("utf-8")))
    write_all_or_nothing(outputs)
    digest = sha256_bytes(pdf)
    if not store.read_only:
        with store.transaction():
            store.add_report(context.kind, str(pdf_path), digest, context.signer,
                             report_id=context.report_id)
    return ReportResult(pdf_path, html_path, digest, context.report_id, context.verdict,
                        context.signer, signer is not None)


def write_all_or_nothing(outputs: list[tuple[Path, bytes]]) -> None:
    """Write every file, or leave every one as it was: each goes to a temporary file in its own
    folder, is flushed and fsynced, and only when all are on disk are they renamed over the old
    ones (a rename within a folder is atomic), the first (the PDF) last. A failure (a full disk) removes the temporaries
    and raises; the caller records the report only after this returns."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, data in outputs:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temps.append((tmp, path))
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for tmp, path in reversed(temps):  # the first file (the PDF) is replaced last
            os.replace(tmp, path)
        _fsync_folder(outputs[0][0].parent)
    except OSError as exc:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise ReportError(f"cannot write the report to {outputs[0][0].parent}: "
                          f"{exc.strerror or exc}; nothing was replaced or recorded") from None


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _standalone(html: str) -> str:
    """The HTML twin with its stylesheet inlined, so it opens anywhere on its own."""
    from auditor.paths import templates_dir

    css = (templates_dir() / "report.css").read_text(encoding="utf-8")
    return html.replace('<link rel="stylesheet" href="report.css">', f"<style>\n{css}</style>")
