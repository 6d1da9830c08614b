"""Every diagnostic code mrules emits, with its one-line title (docs/diagnostics.md has more).

Numbering: MR0xx parser and loader, MR1xx names, MR2xx field types, values and
criteria, MR3xx actions and limits, MR4xx page actions, MR5xx CRM sync, MR6xx
scoring, grading and settings.
"""

from __future__ import annotations

__all__ = ["CODES"]

CODES: dict[str, str] = {
    # parser and loader
    "MR001": "unexpected token",
    "MR002": "unexpected character",
    "MR003": "unexpected end of file",
    "MR004": "unclosed string",
    "MR010": "repeated part",
    "MR011": "part not allowed here",
    "MR012": "invalid date or time",
    "MR013": "sync option set twice",
    "MR014": "number out of range",
    "MR015": "string holds a NUL or a lone surrogate",
    "MR016": "criteria nested too deeply",
    "MR020": "include not found",
    "MR021": "include leaves the rule root or is not allowed",
    "MR022": "includes nested too deeply",
    "MR023": "include path too long",
    "MR024": "rule file outside the rule root or not a regular file",
    "MR030": "unused suppression",
    # names
    "MR101": "duplicate declaration",
    "MR102": "unknown field",
    "MR103": "unknown list",
    "MR104": "unknown user",
    "MR105": "unknown asset",
    "MR106": "asset of another kind",
    "MR107": "unknown group",
    "MR108": "unknown queue",
    "MR109": "undeclared tag",
    "MR110": "unknown campaign",
    "MR111": "unknown CRM campaign",
    "MR112": "unknown CRM campaign member status",
    "MR113": "unknown grading profile",
    "MR114": "unknown profile criterion",
    "MR115": "unknown scoring category",
    # field declarations
    "MR201": "unknown field type",
    "MR202": "choice field without values",
    "MR203": "values on a field that has no choices",
    "MR204": "default field declared with another type",
    "MR205": "field named like a criterion keyword",
    # values and criteria
    "MR210": "value of the wrong type",
    "MR211": "value not among the field's choices",
    "MR212": "operator does not apply to the field type",
    "MR213": "increment of a field that is not a number",
    "MR214": "between with reversed bounds",
    "MR215": "grade comparison that can never hold",
    "MR220": "criteria that can never hold together",
    "MR221": "activity Pardot does not record",
    "MR222": "conditional group with more than one condition",
    "MR223": "image file never triggers",
    # actions and limits
    "MR301": "action not allowed here",
    "MR302": "priority set twice",
    "MR303": "action on a dynamic list",
    "MR304": "rule without when or then",
    "MR305": "list or tag both added and removed",
    "MR306": "repeating score change without cooldown or cap",
    "MR307": "repeat without cooldown",
    "MR308": "repeat that never fires",
    "MR309": "too many conditional groups on an asset",
    "MR310": "too many completion actions on an asset",
    "MR311": "standard and conditional assignment or autoresponder",
    "MR312": "automation rules share a priority",
    "MR313": "dynamic lists that read each other through not",
    # page actions
    "MR401": "not a URL",
    "MR402": "two page actions on one URL",
    "MR403": "two wildcard page actions with one prefix",
    "MR404": "overlapping wildcard page actions",
    "MR405": "URL without a scheme while the scheme counts",
    # sync
    "MR501": "unknown CRM",
    "MR502": "unknown sync object",
    "MR503": "CRM field mapped twice",
    "MR504": "field mapped twice",
    "MR505": "unknown CRM field type",
    "MR506": "unsupported CRM field type",
    "MR507": "field type does not fit the CRM field type",
    "MR508": "rule writes a field the CRM owns",
    "MR509": "sync cadence below the connector's minimum",
    "MR510": "empty sync batch",
    "MR511": "more than one sync block",
    "MR512": "match by crm id is not supported",
    # scoring, grading, settings
    "MR601": "unknown scoring activity",
    "MR602": "activity scored twice",
    "MR603": "scoring category folder without assets",
    "MR604": "folder in two scoring categories",
    "MR605": "more than one default grading profile",
    "MR606": "criterion repeated in a grading profile",
    "MR610": "unknown setting",
    "MR611": "setting value of the wrong type",
    "MR612": "negative duration",
    "MR613": "grade_start is not a grade",
    "MR614": "setting set twice",
}
