import type { AuditWriter } from '../../platform/audit/audit.service.ts';
import type { Actor } from '../../platform/audit/context.ts';
import type { Db } from '../../platform/db/database.ts';
import type { TotalsDrift, TotalsRepo } from './totals.repo.ts';

export type { TotalsDrift } from './totals.repo.ts';

/** Who repairs when the caller names nobody: the operator's CLI (`tranche totals repair`). */
const REPAIR_ACTOR: Actor = { kind: 'system', id: 'cli:totals-repair' };

/**
 * One drift row as a line for an operator: which row, and each column that differs with the value
 * stored and the value the subscriptions sum to (amounts in cents).
 */
export function describeDrift(drift: TotalsDrift): string {
  const what =
    drift.kind === 'offering'
      ? `offering ${drift.id}`
      : drift.kind === 'class'
        ? `class ${drift.id} of offering ${drift.offeringId}`
        : `investor ${drift.id} in offering ${drift.offeringId}`;
  const columns = Object.keys(drift.summed)
    .filter((column) => drift.stored[column] !== drift.summed[column])
    .map((column) => `${column} ${drift.stored[column]} (subscriptions: ${drift.summed[column]})`);
  return `${what} (org ${drift.orgId}): ${columns.join(', ')}`;
}

/**
 * The check and repair of the running totals (see `totals.repo.ts`) for operators: they drift
 * only when something moved subscriptions around the service (SQL by hand, a restored backup, an
 * older release serving after migration 0023).
 */
export function totalsService(deps: { db: Db; totals: Pick<TotalsRepo, 'drift' | 'lockOfferings' | 'recompute'>; audit: AuditWriter }) {
  const { db, totals } = deps;
  return {
    /** Every offering, class and investor row whose running totals differ from the subscriptions (none, normally). Takes no lock. */
    check: (): Promise<TotalsDrift[]> => totals.drift(db),

    /**
     * Recomputes the running totals of every offering with drift (its row, its classes', its
     * investors' parts) from the subscriptions, set-based, in one transaction that first takes the
     * row locks a subscription change takes (the offerings', then their classes', in id order): it
     * can run while the server serves, and a change made meanwhile waits and then moves the
     * repaired totals by its own delta, so none is lost. Records one audit entry (platform chain,
     * action `offering_totals.repaired`, `actor` default the CLI) when it changed anything.
     * Returns what it changed, as found under the locks (empty: nothing differed).
     */
    async repair(actor: Actor = REPAIR_ACTOR): Promise<TotalsDrift[]> {
      const offeringIds = [...new Set((await totals.drift(db)).map((drift) => drift.offeringId))].sort();
      if (offeringIds.length === 0) return [];
      return db.transaction(async (tx) => {
        await totals.lockOfferings(offeringIds, tx);
        // Read again under the locks: what is changed, exactly (a change may have landed since).
        const drift = await totals.drift(tx, offeringIds);
        if (drift.length === 0) return [];
        await totals.recompute(offeringIds, tx);
        const count = (kind: TotalsDrift['kind']) => drift.filter((row) => row.kind === kind).length;
        const repaired = [...new Set(drift.map((row) => row.offeringId))];
        await deps.audit.record(tx, {
          orgId: null,
          action: 'offering_totals.repaired',
          subject: { type: 'running_totals', id: 'issuance' },
          related: repaired.map((id) => ({ type: 'offering', id })),
          details: { offerings: repaired.length, offering_rows: count('offering'), classes: count('class'), investors: count('investor') },
          actor,
        });
        return drift;
      });
    },
  };
}

export type TotalsService = ReturnType<typeof totalsService>;
