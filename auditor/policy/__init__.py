"""Policies over stage scores and the release gate: strict YAML (``load``), metrics computed in
SQL (``metrics``), evaluation with waivers and INDETERMINATE (``evaluate``), JUnit (``junit``).

Outcomes are data: ``gate`` returns a ``GateResult``; only malformed input raises.
"""

from auditor.policy.evaluate import gate
from auditor.policy.load import LoadedPolicy, default_policy_path, load_policy
from auditor.policy.outcomes import GateResult

__all__ = ["GateResult", "LoadedPolicy", "default_policy_path", "gate", "load_policy"]
