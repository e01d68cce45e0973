"""The model versions of the built-in demo: a clean release, one with a bad stage, and (made by
``auditor remediate``) the fix — so that a quarterly audit has a history."""

from __future__ import annotations

from auditor.demo import digits, toxicity
from auditor.demo.record import StagePlan, VersionPlan, utc

THIRD_PARTY = ["third-party"]


def digits_versions() -> list[VersionPlan]:
    pretrain = StagePlan("pretrain", "pretrain", steps=150, lr=0.1)
    vendor = StagePlan("vendor-ft", "fine-tune", steps=80, lr=0.05, fresh_optimizer=False,
                       tags=THIRD_PARTY)
    clean = StagePlan("clean-ft", "fine-tune", steps=40, lr=0.05)
    polish = StagePlan("polish", "alignment", steps=20, lr=0.01, fresh_optimizer=False)
    return [
        VersionPlan(digits, "digits", "v1", utc(2026, 10, 6), [pretrain, clean, polish],
                    "digit classifier, in-house data only"),
        VersionPlan(digits, "digits", "v2", utc(2026, 11, 3), [pretrain, vendor, clean, polish],
                    "digit classifier with a vendor fine-tuning round"),
    ]


def toxicity_versions() -> list[VersionPlan]:
    pretrain = StagePlan("pretrain", "pretrain", steps=120, lr=1e-2, optimizer="adamw",
                         weight_decay=0.01)
    community = StagePlan("community-ft", "fine-tune", steps=80, lr=5e-3, optimizer="adamw",
                          fresh_optimizer=False, weight_decay=0.01, tags=THIRD_PARTY)
    moderation = StagePlan("moderation-ft", "alignment", steps=30, lr=2e-3, optimizer="adamw",
                           fresh_optimizer=False, weight_decay=0.01)
    return [
        VersionPlan(toxicity, "toxicity", "v1", utc(2026, 10, 10), [pretrain, moderation],
                    "comment toxicity classifier"),
        VersionPlan(toxicity, "toxicity", "v2", utc(2026, 11, 7),
                    [pretrain, community, moderation],
                    "comment toxicity classifier with community-labelled fine-tuning"),
    ]
