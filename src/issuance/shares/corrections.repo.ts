import { and, eq, ne, sql } from 'drizzle-orm';
import type { Executor } from '../../platform/db/database.ts';
import { securityClasses, shareCancellations, shares } from '../issuance.tables.ts';

export type ShareRow = typeof shares.$inferSelect;
export type ShareCancellationRow = typeof shareCancellations.$inferSelect;

/** Writes of ledger corrections: a cancellation row, the entry's status, the entry re-issued. */
export function correctionsRepo(db: Executor) {
  return {
    async lockShare(id: string, orgId: string | undefined, tx: Executor): Promise<ShareRow | undefined> {
      const [row] = await tx
        .select()
        .from(shares)
        .where(and(eq(shares.id, id), orgId ? eq(shares.orgId, orgId) : undefined))
        .for('update');
      return row;
    },
    /** Locks the class and answers its authorized units and the units of its live entries. */
    async lockClassUnits(securityClassId: string, tx: Executor): Promise<{ authorized: number; issued: number }> {
      const [security] = await tx
        .select({ authorized: securityClasses.unitsAuthorized })
        .from(securityClasses)
        .where(eq(securityClasses.id, securityClassId))
        .for('update');
      const [issued] = await tx
        .select({ units: sql<string>`coalesce(sum(${shares.units}), 0)` })
        .from(shares)
        .where(and(eq(shares.securityClassId, securityClassId), ne(shares.status, 'cancelled')));
      return { authorized: security!.authorized, issued: Number(issued!.units) };
    },
    async markCancelled(id: string, tx: Executor): Promise<ShareRow> {
      const [row] = await tx
        .update(shares)
        .set({ status: 'cancelled', updatedAt: sql`now()` })
        .where(eq(shares.id, id))
        .returning();
      return row!;
    },
    async insertShare(row: typeof shares.$inferInsert, tx: Executor): Promise<ShareRow> {
      const [inserted] = await tx.insert(shares).values(row).returning();
      return inserted!;
    },
    async insertCancellation(row: typeof shareCancellations.$inferInsert, tx: Executor): Promise<ShareCancellationRow> {
      const [inserted] = await tx.insert(shareCancellations).values(row).returning();
      return inserted!;
    },
    cancellationFor: async (shareId: string) => {
      const [row] = await db.select().from(shareCancellations).where(eq(shareCancellations.shareId, shareId));
      return row;
    },
  };
}

export type CorrectionsRepo = ReturnType<typeof correctionsRepo>;
