"""auditor report | verify | keys init: signed PDF reports and their independent check."""

from __future__ import annotations

from pathlib import Path

import typer

from auditor import api
from auditor.cli.common import console, db_option, wait_option

keys_app = typer.Typer(help="Signing keys for reports.", no_args_is_help=True)


def report(
    version: str = typer.Option(None, "--version", help="MODEL@VERSION: a release-gate report."),
    period: str = typer.Option(None, "--period", help="2026-Q4 (or 2026, 2026-11): a quarterly "
                                                       "report of every version created in it."),
    out: Path = typer.Option(Path("reports"), "--out", help="Folder for the PDF and HTML."),
    p12: Path = typer.Option(None, "--p12", help="PKCS#12 file with the signing key and chain."),
    key: Path = typer.Option(None, "--key", help="PEM private key (with --cert)."),
    cert: Path = typer.Option(None, "--cert", help="PEM signing certificate (with --key)."),
    chain: list[Path] = typer.Option(None, "--chain", help="PEM CA certificate(s) of the chain."),
    passphrase_env: str = typer.Option(None, "--passphrase-env", metavar="VAR",
                                       help="Read the key passphrase from this env variable."),
    passphrase_file: Path = typer.Option(None, "--passphrase-file",
                                         help="Read the key passphrase from this file."),
    tsa_url: str = typer.Option(None, "--tsa-url", help="RFC 3161 timestamp authority URL "
                                                        "(PAdES B-T)."),
    crl: list[Path] = typer.Option(None, "--crl", help="CRL of the signing CA, embedded with the "
                                                       "certificates in the DSS (PAdES B-LT)."),
    archive: bool = typer.Option(False, "--archive", help="Add a document timestamp over the "
                                                          "validation data (PAdES B-LTA)."),
    level: str = typer.Option(None, "--level", help="PAdES level: B-B, B-T, B-LT or B-LTA. B-LT "
                              "and B-LTA take the CRL and root.pem keys init wrote beside the "
                              "key unless --crl/--chain give them; all but B-B need --tsa-url."),
    settings: Path = typer.Option(None, "--settings", help="Report settings file (default: "
                                                           "./auditor.yaml when it exists)."),
    policy_file: Path = typer.Option(None, "--policy", help="Policy file to embed (default: the "
                                                            "one stored with the policy run)."),
    html: bool = typer.Option(True, "--html/--no-html", help="Also write the HTML twin."),
    db: Path = db_option(),
    wait: float = wait_option(),
) -> None:
    """Render a signed PDF/A-3b report with its evidence embedded, and record it in the store."""
    signing = api.signer_settings(p12=p12, key=key, cert=cert, chain=tuple(chain or ()),
                                  passphrase_env=passphrase_env,
                                  passphrase_file=passphrase_file, tsa_url=tsa_url,
                                  crls=tuple(crl or ()), archive=archive, level=level)
    result = api.make_report(db=db, out_dir=out, version=version, period=period,
                             signing=signing, html=html, policy_file=policy_file, wait=wait,
                             settings=settings)
    console.print(f"report {result.report_id}: {result.verdict}", soft_wrap=True)
    console.print(f"  pdf  {result.pdf} (sha256 {result.sha256})", soft_wrap=True)
    if result.html:
        console.print(f"  html {result.html}", soft_wrap=True)
    console.print(f"  signed by {result.signer}" if result.signed else
                  "  UNSIGNED: pass --p12 or --key/--cert to sign", soft_wrap=True)


def verify(
    pdf: Path = typer.Argument(..., help="The report PDF."),
    trust: Path = typer.Option(None, "--trust", help="PEM root certificate to trust."),
    db: Path = typer.Option(None, "--db", help="Also check the evidence against this store."),
    integrity_only: bool = typer.Option(
        False, "--integrity-only", help="Without --trust: check only that the file is intact "
        "(the signer stays unknown). Without either, the report is INVALID."),
    wait: float = wait_option(),
) -> None:
    """Check signature, signer, embedded files and (with --db) the store. Exit 0 valid, 1
    invalid (also: no --trust and no --integrity-only), 2 error."""
    from auditor.report.verify import NOT_VERIFIED

    result = api.verify_report(pdf, trust=trust, db=db, wait=wait,
                               integrity_only=integrity_only)
    for check in result.checks:
        mark = "ok  " if check.ok else "FAIL"
        console.print(f"{mark} {check.name}: {check.detail}", soft_wrap=True)
    if result.signer:
        console.print(f"signer: {result.signer}{' (DEMO identity)' if result.demo else ''}",
                      soft_wrap=True)
    if result.valid and not result.trust_checked:
        console.print(f"{pdf}: INTACT ({NOT_VERIFIED}: integrity-only check)", soft_wrap=True)
        raise typer.Exit(0)
    console.print(f"{pdf}: {'VALID' if result.valid else 'INVALID'}", soft_wrap=True)
    raise typer.Exit(0 if result.valid else 1)


@keys_app.command("init")
def keys_init(
    folder: Path = typer.Argument(Path("keys"), help="Where to write the keys."),
    demo: bool = typer.Option(False, "--demo", help="A throwaway identity; its reports say DEMO."),
    name: str = typer.Option("auditor signer", "--name", help="Signer common name."),
    organisation: str = typer.Option("auditor", "--org", help="Organisation name."),
    passphrase_env: str = typer.Option(None, "--passphrase-env", metavar="VAR",
                                       help="Encrypt the key with the passphrase in VAR."),
    no_passphrase: bool = typer.Option(
        False, "--no-passphrase", help="Write the private key unencrypted, knowingly "
        "(a --demo identity may omit both)."),
    force: bool = typer.Option(False, "--force", help="Replace existing keys."),
) -> None:
    """Create a self-signed CA (root.pem; its key root.key.pem; its first CRL root.crl, for
    PAdES B-LT) and a signing identity (signer.pem/.key.pem/.p12). Both keys are encrypted with
    the passphrase in --passphrase-env; an empty passphrase is refused, and unencrypted keys
    need --no-passphrase (or --demo)."""
    from auditor.errors import SigningError
    from auditor.report.sign import SignerSettings

    if no_passphrase and passphrase_env:
        raise SigningError("give --passphrase-env VAR or --no-passphrase, not both")
    passphrase = SignerSettings(passphrase_env=passphrase_env).passphrase()
    if passphrase is None and not (no_passphrase or demo):
        raise SigningError("keys init writes a private key: give --passphrase-env VAR to "
                           "encrypt it, or --no-passphrase to write it unencrypted knowingly")
    files = api.init_keys(folder, demo=demo, name=name, organisation=organisation,
                          passphrase=passphrase, force=force)
    console.print(f"wrote {files.root} (give to verifiers as --trust), {files.ca_key}, "
                  f"{files.crl} (renew with auditor keys crl), {files.cert}, {files.key}, "
                  f"{files.p12}{' [DEMO]' if demo else ''}", soft_wrap=True)


@keys_app.command("crl")
def keys_crl(
    folder: Path = typer.Argument(Path("keys"), help="The folder keys init wrote."),
    revoke: list[int] = typer.Option(None, "--revoke", metavar="SERIAL",
                                     help="Also revoke this certificate serial number."),
    passphrase_env: str = typer.Option(None, "--passphrase-env", metavar="VAR",
                                       help="The CA key's passphrase is in VAR."),
    passphrase_file: Path = typer.Option(None, "--passphrase-file",
                                         help="Read the CA key's passphrase from this file."),
) -> None:
    """Issue the CA's next CRL (root.crl): what the current one revokes plus --revoke, valid
    for 30 days. Renew it before it runs out: PAdES B-LT refuses a stale CRL."""
    from auditor.report.sign import SignerSettings

    passphrase = SignerSettings(passphrase_env=passphrase_env,
                                passphrase_file=passphrase_file).passphrase()
    path, number, revoked = api.renew_crl(folder, passphrase=passphrase,
                                          revoke=tuple(revoke or ()))
    console.print(f"wrote {path}: CRL number {number}, {revoked} certificate(s) revoked",
                  soft_wrap=True)
