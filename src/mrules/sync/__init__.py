"""The CRM sync engine: one cycle at a time on the run's clock (docs/sync.md).

- `config`: the `sync salesforce { ... }` block as settings the sync reads;
- `db`: the sync's own file (`NAME.sync.db` beside the store): links and
  their base snapshots, the outbound queue, the error queue, cursors, the
  inbound facts waiting for the engine, opportunities, applied plans;
- `merge`: the per-field decision (base snapshot, blank rule, policy);
- `plan`: what a cycle would do, record by record (`mrules sync plan`);
- `apply`: perform a plan against the CRM port, then hand the CRM's facts
  to the engine (`mrules sync apply`);
- `cycle`: plan + apply for every cycle due up to a time (`mrules sync run`).
"""

from __future__ import annotations

from mrules.sync.config import SyncConfig, SyncConfigError
from mrules.sync.db import SyncDb, default_sync_path

__all__ = ["SyncConfig", "SyncConfigError", "SyncDb", "default_sync_path"]
