"""auditor serve: the read-only web dashboard over the store (auditor/serve)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer

from auditor.cli.common import console, db_option, err_console
from auditor.errors import InputError


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    db: Path = db_option(),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback unless "
                                                          "--public)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="TCP port."),
    public: bool = typer.Option(False, "--public", help="Allow binding a non-loopback address. "
                                "There is no authentication: put a reverse proxy with auth in "
                                "front (docs/serve.md)."),
    trust: Path = typer.Option(None, "--trust", help="PEM root certificate: Verify and Reports "
                                                     "then check the signer's identity."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.01,
                                        help="Largest PDF the Verify page accepts."),
    wait: float = typer.Option(5.0, "--wait", metavar="SECONDS",
                               help="How long a request waits for a writer to release the store."),
) -> None:
    """Serve a read-only web dashboard of the store (overview, versions, trends, reports,
    verify, event log; every page also as JSON). Ctrl-C stops it."""
    import uvicorn

    from auditor import api
    from auditor.serve import ServeSettings, create_app
    from auditor.serve.app import LOCAL_HOSTS

    local = _is_loopback(host)
    if not local and not public:
        raise InputError(f"--host {host} would expose the dashboard beyond this machine and it "
                         "has no authentication; pass --public to do it anyway (docs/serve.md)")
    if trust is not None and not trust.is_file():
        raise InputError(f"--trust {trust}: no such file")
    with api.open_store(db, read_only=True, wait=wait):  # a clear error now, not per request
        pass
    if not local:
        err_console.print(f"WARNING: serving {db} on {host}:{port} with NO authentication: "
                          "anyone who can reach it can read the whole store. Put a reverse proxy "
                          "with authentication in front (docs/serve.md).", soft_wrap=True)
    settings = ServeSettings(db=db, trust=trust, max_upload=int(max_upload_mb * (1 << 20)),
                             wait=wait,
                             allowed_hosts=(*LOCAL_HOSTS, host) if local else ("*",))
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning",
                            access_log=False, server_header=False)
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"auditor serve: http://{shown}:{port}/ (read-only view of {db}; Ctrl-C stops)",
                  soft_wrap=True, markup=False)
    server.run()
