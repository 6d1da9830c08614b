"""Scoring rows, scoring categories and grading profiles.

Rules (codes MR601-MR607):

* a scoring row names an activity Pardot scores (MR601): `form submision +50`
  -> did you mean 'form submission'?;
* a row repeated for the same activity (MR602, a warning): the later wins;
* a scoring-category folder that no declared asset sits in, nor in a folder
  below it (MR603, a warning): the category never scores anything there;
* a folder in two scoring categories (MR604): Pardot gives a folder one;
* more than one `default` grading profile (MR605);
* a criterion listed twice in one grading profile (MR606);
* a grading profile with no criterion (MR607, a warning): nothing can move a
  prospect's grade off `grade_start` with it.
"""

from __future__ import annotations

from collections.abc import Iterator

from mrules import ast
from mrules.checker import report
from mrules.checker.visit import of_type
from mrules.diagnostics import Diagnostic
from mrules.symbols import ACTIVITY_TYPES, Symbols

__all__ = ["check_grading", "check_scoring"]


def check_scoring(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR601-MR604."""
    rows: dict[str, tuple[str, ast.ScoreRow]] = {}
    folders: dict[str, tuple[str, ast.Name, ast.ScoringCategory]] = {}
    asset_folders = {
        d.node.folder.text
        for d in sym.assets.values()
        if isinstance(d.node, ast.AssetDecl) and d.node.folder is not None
    }
    for path, item in of_type(program, ast.Scoring):
        for row in item.rows:
            activity = row.activity.text
            if activity not in ACTIVITY_TYPES:
                yield report.error(
                    "MR601",
                    f"unknown scoring activity '{activity}'",
                    path,
                    row.activity,
                    hint=report.did_you_mean(activity, ACTIVITY_TYPES)
                    or "see the list in docs/diagnostics.md#mr601",
                )
                continue
            prev = rows.get(activity)
            rows[activity] = (path, row)
            if prev is not None:
                yield report.warning(
                    "MR602",
                    f"'{activity}' is scored twice; {row.points:+d} replaces {prev[1].points:+d}",
                    path,
                    row.activity,
                    hint="keep one row per activity",
                    related=[report.note(prev[0], prev[1].activity, "scored here before")],
                )
    for path, category in of_type(program, ast.ScoringCategory):
        for folder in category.folders.values:
            prev_path, prev_name, prev_category = folders.setdefault(
                folder.text, (path, folder, category)
            )
            if prev_name is folder:
                if not _holds_assets(folder.text, asset_folders):
                    bare = folder.text.rstrip("/")
                    yield report.warning(
                        "MR603",
                        f"no declared asset is in folder '{folder.text}'",
                        path,
                        folder,
                        hint=f"name the folder without the trailing slash: '{bare}'"
                        if bare != folder.text and _holds_assets(bare, asset_folders)
                        else report.did_you_mean(folder.text, asset_folders)
                        or "the category scores assets in this folder and the folders below it",
                    )
            elif prev_category is not category:  # twice in one category is harmless
                yield report.error(
                    "MR604",
                    f"folder '{folder.text}' is in two scoring categories",
                    path,
                    folder,
                    hint="a folder belongs to one scoring category",
                    related=[report.note(prev_path, prev_name, "first category here")],
                )


def _holds_assets(folder: str, asset_folders: set[str]) -> bool:
    """Whether an asset folder is `folder` or below it, as the compiler finds an asset's
    category: its folder, then each parent (`a/b/c`, `a/b`, `a`) compared as written."""
    for asset_folder in asset_folders:
        here = asset_folder
        while here:
            if here == folder:
                return True
            here = here.rpartition("/")[0]
    return False


def check_grading(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR605-MR607."""
    default: tuple[str, ast.GradingProfile] | None = None
    for path, item in of_type(program, ast.GradingProfile):
        if item.default:
            if default is None:
                default = (path, item)
            else:
                yield report.error(
                    "MR605",
                    f"'{item.name.text}' is a second default grading profile",
                    path,
                    item.name,
                    hint="only one profile can be the default",
                    related=[report.note(default[0], default[1].name, "default profile here")],
                )
        if not item.criteria:
            yield report.warning(
                "MR607",
                f"grading profile '{item.name.text}' has no criterion",
                path,
                ast.Span(item.name.span.end, item.span.end),  # narrowed to the braces on output
                hint='add its criteria (`criterion "Company size" 2/3`), or remove the profile',
            )
        seen: dict[str, ast.GradingCriterion] = {}
        for crit in item.criteria:
            prev = seen.setdefault(crit.name.text, crit)
            if prev is not crit:
                yield report.error(
                    "MR606",
                    f"criterion '{crit.name.text}' is listed twice in profile '{item.name.text}'",
                    path,
                    crit.name,
                    hint="keep one",
                    related=[report.note(path, prev.name, "first listed here")],
                )
