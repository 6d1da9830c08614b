"""The run loop of `mrules run`: events in, prospect state, ledger and outbox out.

One event at a time, in stream order:
1. skip it if its `id` was applied before (safe replay);
2. move the clock to its time (event time, never backwards);
3. find or create the prospect (a visitor's page views stay anonymous until a
   form submit or `identify` ties the visitor to a prospect; then they count
   for default scoring and activity criteria, but page actions and completion
   actions are never replayed for them, docs/pardot.md §2.3);
4. apply what the event means: fields, activity, default scoring, the page
   action, the asset's completion actions in the seed's order (assignment,
   then data changes in declared order, then automation rules, then
   notifications, autoresponders and tasks);
5. settle the prospect: re-evaluate only the automation rules and dynamic
   lists that read a fact the event changed (`CompiledRuleSet.candidates`;
   every rule for a new prospect), in priority order, until nothing changes.

Ticks (and `--now`) re-check time-based rules only for the prospects whose
next threshold has passed: a heap of wake-up times fed by the compiled
timers (`_tick_all`). Anonymous page views are not kept in memory: they are
activity rows, read back from the store when the visitor converts.

Every change goes to the ledger (the `explain` command and `--actions` read
it); notifications and autoresponders go to the outbox; work that needs the
CRM goes to pending CRM work. Every `batch_size` lines the engine hands the
store one `Batch`: the changed prospects, the applied ids, the ledger rows and
the stream position, committed in one transaction, so that a killed run
resumes exactly where its last commit left it.

Prospects in memory are a cache of the store: every prospect a batch changed
stays until its commit; after it, the least recently used beyond
`cache_prospects` (`--cache-prospects`, default `DEFAULT_CACHE_PROSPECTS`) are
dropped, and decoded from the store again when an event needs them.

Modules: `run` (the loop, batches and commits, identities, the ledger),
`handlers` (one handler per event type), `effects` (what compiled actions do,
dispatched by name through `EFFECTS`), `settle` (rules, dynamic lists, ticks,
segmentation), `summary` (`RunSummary`).
"""

from mrules.engine.run import DEFAULT_CACHE_PROSPECTS, Engine
from mrules.engine.summary import RunSummary, iso

__all__ = ["DEFAULT_CACHE_PROSPECTS", "Engine", "RunSummary", "iso"]
