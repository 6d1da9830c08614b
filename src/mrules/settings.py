"""Engine settings: the knobs where Pardot's behaviour is unverified, with their defaults.

A rule set may change them in a `settings { name = value }` block; the checker
validates names and types against `SETTINGS`, and the engine reads the merged
`EngineSettings`. Each default and why it was chosen is in docs/semantics.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = [
    "BETWEEN_SETTINGS",
    "CHOICES",
    "SETTINGS",
    "URL_SETTINGS",
    "EngineSettings",
    "SettingSpec",
    "changed_settings",
]


@dataclass(frozen=True)
class EngineSettings:
    """Every engine knob, with the default mrules documents."""

    # Completion actions (§2.3): window in which a repeat activity by the same
    # prospect on the same asset does not adjust score or resend an autoresponder.
    throttle_minutes: int = 10
    # Forms may opt out of throttling for autoresponders (Pardot's isAlwaysEmail).
    always_send_autoresponder: bool = False
    # Page actions (§3): at most one notification per prospect, page and window.
    page_notify_minutes: int = 60
    # URL normalisation for page actions and `visited` criteria (§3).
    url_ignore_scheme: bool = True
    url_ignore_www: bool = True
    url_ignore_query: bool = True
    url_ignore_trailing_slash: bool = True
    url_ignore_path_case: bool = False
    # Scoring (§5.1): score only the first open of each email.
    email_open_first_only: bool = True
    # Criteria (§4.2): whether `between` holds for an empty value (a known Pardot quirk).
    between_matches_empty: bool = False
    # Grading (§5.4): the ladder position every prospect starts at (D = 2).
    grade_start: str = "D"
    # Events naming an asset the rules do not declare: "warn" (apply the event,
    # count it in the summary with a did-you-mean), "reject" (the line goes to the
    # rejects file) or "ignore" (apply it, say nothing).
    unknown_assets: str = "warn"
    # A `fields` value that does not fit its declared field (a picklist value the
    # field does not have, "many" for a number): "skip" (apply the event without
    # that field, counted and logged), "reject" (the line goes to the rejects
    # file) or "keep" (store it as given, counted in the summary).
    bad_field_values: str = "skip"
    # `assign to group` (§2.3): "shared" takes the members in turn, one counter for
    # all prospects (in the store's `shared` table); "by prospect" picks the member
    # from a hash of the email, the same in any partition of the stream.
    round_robin: str = "shared"

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> EngineSettings:
        """Defaults overridden by `values` (already validated by the checker)."""
        known = {f.name for f in fields(cls)}
        chosen = {
            k: v for k, v in values.items() if k in known and (k not in CHOICES or v in CHOICES[k])
        }
        return replace(cls(), **chosen)


@dataclass(frozen=True)
class SettingSpec:
    name: str
    type: type
    default: Any
    choices: tuple[str, ...] | None = None  # the only values a string setting takes


# The string settings that take one of a few words (the checker refuses others).
CHOICES: dict[str, tuple[str, ...]] = {
    "unknown_assets": ("warn", "reject", "ignore"),
    "bad_field_values": ("skip", "reject", "keep"),
    "round_robin": ("shared", "by prospect"),
}

SETTINGS: dict[str, SettingSpec] = {
    f.name: SettingSpec(f.name, type(f.default), f.default, CHOICES.get(f.name))
    for f in fields(EngineSettings)
}


# The settings that change what a criterion means, by the criterion that reads
# them: a change re-evaluates the rules and dynamic lists whose criteria read
# one (their criteria hash counts it), and no others.
URL_SETTINGS: tuple[str, ...] = (
    "url_ignore_scheme",
    "url_ignore_www",
    "url_ignore_query",
    "url_ignore_trailing_slash",
    "url_ignore_path_case",
)  # `visited "url pattern"`
BETWEEN_SETTINGS: tuple[str, ...] = ("between_matches_empty",)  # a field `between`


def changed_settings(settings: EngineSettings, names: tuple[str, ...]) -> dict[str, Any]:
    """The settings among `names` that differ from their default, with their values.

    Defaults count as nothing, so what a rule set that sets none of them
    computes from this (criteria hashes, activity keys) is what it was before
    settings counted.
    """
    default = EngineSettings()
    return {n: getattr(settings, n) for n in names if getattr(settings, n) != getattr(default, n)}
