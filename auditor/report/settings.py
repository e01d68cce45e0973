"""Report settings: who provides the model, who is accountable, who reviewed and approved it,
what it is for and not for (EU AI Act Art. 11 and Annex IV points 1 and 2(g)).

Read strictly from ``auditor.yaml`` (its ``report:`` mapping) or from ``[tool.auditor.report]``
in ``pyproject.toml``. Unknown keys are errors naming the line; a field the file does not give is
shown as "not provided" — the report never guesses one (a licence is never "unknown", a signer is
never presumed to be the responsible person).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from auditor.errors import InputError
from auditor.yamlio import parse_document, read_text, validate

NOT_PROVIDED = "not provided"
SETTINGS_FILE = "auditor.yaml"


class ReportSettingsError(InputError):
    """The report settings file is unreadable or invalid."""


class _DatesAsText(yaml.SafeLoader):
    """Dates stay text: an approval date is printed exactly as written."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith(":timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

Text = str


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: Text | None = None
    date: Text | None = None
    reference: Text | None = None


class ReportSettings(BaseModel):
    """What a report states about accountability and scope; every field optional."""

    model_config = ConfigDict(extra="forbid")

    provider: Text | None = None
    accountable_owner: Text | None = None
    independent_reviewer: Text | None = None
    approval: Approval | None = None
    intended_users: list[Text] = Field(default_factory=list)
    intended_uses: list[Text] = Field(default_factory=list)
    out_of_scope_uses: list[Text] = Field(default_factory=list)
    contact: Text | None = None
    model_licence: Text | None = None

    @field_validator("intended_users", "intended_uses", "out_of_scope_uses", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("provider", "accountable_owner", "independent_reviewer", "contact",
                     "model_licence")
    @classmethod
    def _not_blank(cls, value):
        if value is not None and not value.strip():
            raise ValueError("must not be empty (leave the key out instead)")
        return value


@dataclass(frozen=True)
class Responsibility:
    """One printed row: a label, its value or "not provided", and whether it was given."""

    label: str
    value: str
    provided: bool


class SigningDefaults(BaseModel):
    """``signing:``: a timestamp authority makes every signature PAdES B-T by default; CRLs
    (files, relative to the settings file) make it B-LT; ``archive`` adds a document timestamp
    (B-LTA). Command-line options override them."""

    model_config = ConfigDict(extra="forbid")

    tsa_url: Text | None = None
    crl: list[Text] = Field(default_factory=list)
    archive: bool = False

    @field_validator("crl", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("tsa_url")
    @classmethod
    def _http(cls, value):
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    report: ReportSettings = Field(default_factory=ReportSettings)
    signing: SigningDefaults = Field(default_factory=SigningDefaults)


def load_settings(path: str | Path | None = None, *, folder: str | Path = ".") -> ReportSettings:
    """The settings from ``path`` (YAML, or a pyproject.toml), else ``auditor.yaml`` in
    ``folder`` when it exists, else empty settings (every field "not provided")."""
    return load_document(path, folder=folder).report


def load_document(path: str | Path | None = None, *, folder: str | Path = ".") -> _Document:
    """Both mappings (``report``, ``signing``); CRL paths made relative to the file's folder."""
    if path is None:
        default = Path(folder) / SETTINGS_FILE
        if not default.is_file():
            return _Document()
        path = default
    path = Path(path)
    if path.suffix == ".toml":
        document = _from_pyproject(path)
    else:
        data, lines = parse_document(read_text(path, ReportSettingsError), path,
                                     ReportSettingsError, _DatesAsText)
        document = _Document() if data is None else \
            validate(_Document, data, path, lines, ReportSettingsError)
    document.signing.crl = [str(path.parent / c) for c in document.signing.crl]
    return document


def _from_pyproject(path: Path) -> _Document:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(read_text(path, ReportSettingsError))
    except tomllib.TOMLDecodeError as exc:
        raise ReportSettingsError(f"syntax error: {exc}", path=str(path)) from None
    section = data.get("tool", {}).get("auditor", {})
    section = {key: section[key] for key in ("report", "signing") if key in section}
    return validate(_Document, section, path, {}, ReportSettingsError)


def _text(value: str | None) -> str:
    return value if value else NOT_PROVIDED


def _list(values: list[str]) -> str:
    return "; ".join(values) if values else NOT_PROVIDED


def responsibilities(settings: ReportSettings) -> list[Responsibility]:
    """The rows of the responsibilities table, in a fixed order."""
    approval = settings.approval
    approved = NOT_PROVIDED
    if approval and approval.by:
        approved = approval.by + (f", {approval.date}" if approval.date else "") + (
            f" (ref. {approval.reference})" if approval.reference else "")
    rows = [("Provider", _text(settings.provider)),
            ("Accountable owner", _text(settings.accountable_owner)),
            ("Independent reviewer", _text(settings.independent_reviewer)),
            ("Approval", approved),
            ("Intended users", _list(settings.intended_users)),
            ("Intended uses", _list(settings.intended_uses)),
            ("Out-of-scope uses", _list(settings.out_of_scope_uses)),
            ("Contact", _text(settings.contact)),
            ("Model licence", _text(settings.model_licence))]
    return [Responsibility(label, value, value != NOT_PROVIDED) for label, value in rows]
