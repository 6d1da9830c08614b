"""Which CRM a command talks to: `--crm local|salesforce|PATH` (or `MRULES_CRM`).

- `local` (the default): the local CRM beside the store, `NAME.crm.db` for `NAME.db`;
- a path: the local CRM in that file;
- `salesforce`: a real org through the Salesforce adapter, logged in with the
  `MRULES_SF_*` variables (`mrules.crm.salesforce.ENV_HELP`; docs/sync.md says how
  to connect a sandbox). It needs the extra: `pip install 'mrules[salesforce]'`.

`local` and `salesforce` are taken in any case (`Salesforce`); a CRM file of such a
name is given as a path, `./Salesforce`.

Failing to connect raises `CrmConnectError` with the message a user reads and
the exit code (2 when the user must fix the command or the environment, 4 when
the CRM or its file fails).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["ENV_VAR", "CrmConnectError", "crm_kind", "open_crm"]

ENV_VAR = "MRULES_CRM"
"""The CRM to use when `--crm` is not given: local, salesforce or a path."""
EXTRA_HINT = "pip install 'mrules[salesforce]'"
KINDS = ("local", "salesforce")
"""The names `--crm` takes for a kind, in any case; a file so named is `./salesforce`."""


class CrmConnectError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def crm_kind(spec: str | None, environ: Mapping[str, str] | None = None) -> str:
    """`local`, `salesforce` or the path of a local CRM file, from `--crm` or MRULES_CRM."""
    env = os.environ if environ is None else environ
    value = (spec or env.get(ENV_VAR) or "local").strip()
    if value.lower() in KINDS:  # `--crm Salesforce` was a CRM file of that name, missing
        return value.lower()
    return value or "local"


def open_crm(
    spec: str | None,
    store_path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    create: bool = False,
) -> Any:
    """The CRM port `spec` names (see the module's text); CrmConnectError when it cannot."""
    from mrules.crm.emulator import CrmFileError, CrmPathError, EmulatedCrm, default_crm_path

    kind = crm_kind(spec, environ)
    if kind == "salesforce":
        return _salesforce(environ)
    path = default_crm_path(store_path) if kind == "local" else Path(kind)
    try:
        return EmulatedCrm.open(path, create=create)
    except CrmPathError as e:  # missing, or a folder: the command must be fixed (exit 2)
        raise CrmConnectError(str(e), 2) from e
    except CrmFileError as e:  # the file failed: not a CRM, damaged, cannot be made
        raise CrmConnectError(str(e), 4) from e


def _salesforce(environ: Mapping[str, str] | None) -> Any:
    try:
        from mrules.crm.salesforce import CrmConfigError, SalesforceCrm
    except ImportError as e:
        raise CrmConnectError(
            f"--crm salesforce needs the Salesforce extra ({e.name} is not installed):"
            f" {EXTRA_HINT}",
            2,
        ) from e
    from mrules.crm.errors import CrmCallError

    try:
        return SalesforceCrm.from_env(environ)
    except CrmConfigError as e:
        raise CrmConnectError(f"--crm salesforce: {e}".rstrip(), 2) from e
    except CrmCallError as e:
        raise CrmConnectError(f"--crm salesforce: cannot log in: {e}", 4) from e
