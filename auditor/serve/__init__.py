"""auditor.serve: a local, read-only web dashboard over the store (``auditor serve``).

Server-side HTML (Jinja2, the report room's charts) with a JSON twin of every page. Each request
opens its own short-lived read-only connection, so writers (``auditor gate``/``audit``) are only
ever held up for the length of one request. See docs/serve.md.
"""

from auditor.serve.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
