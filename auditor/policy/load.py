"""Load a policy file strictly: every error names the file, the line and the key."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from auditor.errors import PolicyError
from auditor.hashing import canonical_json, sha256_bytes
from auditor.paths import policies_dir
from auditor.policy.model import Policy, Rule
from auditor.yamlio import LineMap, key_path, line_of, parse_document, read_text, validate

DEFAULT_POLICY = "default.yaml"


class _DatesAsText(yaml.SafeLoader):
    """Keeps dates as text so that pydantic parses them: a bad date (2026-13-45) becomes an
    error naming its line instead of a crash inside the YAML parser."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith(":timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: Path
    hash: str  # sha256 of the policy's canonical JSON: comments and layout do not count
    text: str | None = None  # the file as read, so a report can embed exactly that file

    @property
    def id(self) -> str:
        return self.policy.policy


def policy_hash(policy: Policy) -> str:
    return sha256_bytes(canonical_json(policy.model_dump(mode="json")).encode())


def default_policy_path() -> Path:
    return policies_dir() / DEFAULT_POLICY


def load_policy(path: str | Path | None = None) -> LoadedPolicy:
    """Parse and check a policy file (the shipped default when ``path`` is None)."""
    path = Path(path) if path is not None else default_policy_path()
    text = read_text(path, PolicyError)
    data, lines = parse_document(text, path, PolicyError, _DatesAsText)
    policy = validate(Policy, data, path, lines, PolicyError)
    check_policy(policy, path, lines)
    return LoadedPolicy(policy, path, policy_hash(policy), text)


def _error(message: str, path: Path, lines: LineMap, loc: tuple) -> PolicyError:
    return PolicyError(message, path=str(path), line=line_of(loc, lines), key=key_path(loc))


def check_policy(policy: Policy, path: Path, lines: LineMap) -> None:
    """Checks across fields that pydantic's per-field validation cannot see."""
    seen: set[str] = set()
    for index, rule in enumerate(policy.rules):
        loc = ("rules", index)
        if rule.id in seen:
            raise _error(f"duplicate rule id {rule.id!r}", path, lines, (*loc, "id"))
        seen.add(rule.id)
        _check_rule(rule, policy, path, lines, loc)
    for index, waiver in enumerate(policy.waivers):
        _check_waiver(waiver, seen, path, lines, ("waivers", index))


def _check_rule(rule: Rule, policy: Policy, path: Path, lines: LineMap, loc: tuple) -> None:
    if (rule.behaviours is None) == (rule.direction is None):
        raise _error("give either behaviours (names) or direction (harm|benefit), not both or "
                     "neither", path, lines, (*loc, "behaviours"))
    for index, name in enumerate(rule.behaviours or []):
        if name not in policy.behaviours:
            known = ", ".join(sorted(policy.behaviours)) or "none declared"
            raise _error(f"unknown behaviour {name!r} (declared: {known})", path, lines,
                         (*loc, "behaviours", index))
    problem = threshold_problem(rule.metric, rule.threshold)
    if problem:
        raise _error(problem, path, lines, (*loc, "threshold"))
    if not math.isfinite(rule.materiality):
        raise _error("materiality must be a finite number", path, lines, (*loc, "materiality"))


def threshold_problem(metric: str, threshold: float) -> str | None:
    """Why ``threshold`` is out of range for ``metric`` (None when it is fine)."""
    if not math.isfinite(threshold):
        return "threshold must be a finite number"
    if metric == "share" and not 0.0 <= threshold <= 1.0:
        return f"threshold {threshold} out of range: a share lies in [0, 1]"
    if metric == "rank" and (threshold < 1 or threshold != int(threshold)):
        return f"threshold {threshold} out of range: a rank is a whole number >= 1"
    return None


def _check_waiver(waiver, rule_ids: set[str], path: Path, lines: LineMap, loc: tuple) -> None:
    if waiver.rule not in rule_ids:
        raise _error(f"waiver names unknown rule {waiver.rule!r}", path, lines, (*loc, "rule"))
    if waiver.version is None and waiver.stage is None:
        raise _error("a waiver must name a version, a stage or both (no blanket waivers)",
                     path, lines, (*loc, "rule"))
    if waiver.version is not None and "@" not in waiver.version:
        raise _error(f"{waiver.version!r} is not of the form MODEL@VERSION", path, lines,
                     (*loc, "version"))
