"""The ``auditor`` command: thin commands over ``auditor.api``.

Each room registers a sub-app (``auditor/cli/<room>.py``); this module is the one place that
maps errors to messages and exit codes: 0 ok/pass, 1 policy fail or invalid, 2 error.
"""

from __future__ import annotations

import logging
import sys
import warnings

import typer

from auditor.cli import audit as audit_cli
from auditor.cli import demo as demo_cli
from auditor.cli import lineage as lineage_cli
from auditor.cli import log as log_cli
from auditor.cli import policy as policy_cli
from auditor.cli import remediate as remediate_cli
from auditor.cli import report as report_cli
from auditor.cli import serve as serve_cli
from auditor.cli.common import state
from auditor.errors import AuditorError
from auditor.logs import NOISY

app = typer.Typer(
    name="auditor",
    help="Stage-level accountability attribution for models trained in stages: record lineage, "
         "attribute behaviours to stages, gate releases on policy, and sign audit reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks and debug logs."),
) -> None:
    state.verbose = verbose
    if not verbose:  # libraries' deprecation notes are not the user's business: one line per error
        warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    for library in NOISY:  # their tracebacks duplicate our one-line errors
        logging.getLogger(library).setLevel(logging.DEBUG if verbose else logging.CRITICAL)


app.add_typer(lineage_cli.app, name="lineage")
app.add_typer(log_cli.app, name="log")
app.command("demo")(demo_cli.demo)
app.command("remediate")(remediate_cli.remediate)
app.command("attribute")(audit_cli.attribute)
app.command("audit")(audit_cli.audit)
app.add_typer(policy_cli.app, name="policy")
app.command("gate")(policy_cli.gate)
app.command("report")(report_cli.report)
app.command("verify")(report_cli.verify)
app.add_typer(report_cli.keys_app, name="keys")
app.command("serve")(serve_cli.serve)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the process exit code."""
    try:
        result = app(args=argv, standalone_mode=False, prog_name="auditor")
    except AuditorError as exc:
        _report(exc)
        return exc.exit_code
    except typer.Abort:
        print("auditor: aborted", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            print(f"auditor: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("auditor: interrupted", file=sys.stderr)
        return 2
    except (MemoryError, RecursionError, OSError) as exc:  # a hostile input the rooms missed
        _report(exc, _unexpected(exc))
        return 2
    except Exception as exc:
        if not type(exc).__module__.startswith("duckdb"):
            raise
        _report(exc, f"the store cannot be read: {_first_line(exc)}")
        return 2
    return result if isinstance(result, int) else 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unexpected(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "out of memory reading the input (is it a device or an oversized file?)"
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply"
    return f"{getattr(exc, 'filename', None) or 'input'}: {exc.strerror or _first_line(exc)}"


def _report(exc: BaseException, message: str | None = None) -> None:
    if state.verbose:
        import traceback

        traceback.print_exception(exc)
    text = " ".join((message or str(exc)).split())  # one line, whatever the message holds
    print(f"auditor: error: {text}", file=sys.stderr)


def run() -> None:
    sys.exit(main())
