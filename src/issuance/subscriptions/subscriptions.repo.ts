import { and, desc, eq, gte, inArray, ne, sql } from 'drizzle-orm';
import type { Executor } from '../../platform/db/database.ts';
import { keysetAfter, pageWithTotal, type Page } from '../../platform/db/pages.ts';
import { offerings, paymentEvents, shares, subscriptions, subscriptionTransitions } from '../issuance.tables.ts';
import { HOLDING_STATUSES } from '../offerings/offerings.repo.ts';

export type SubscriptionRow = typeof subscriptions.$inferSelect;
export type SubscriptionStatus = SubscriptionRow['status'];
export type ShareRow = typeof shares.$inferSelect;

export function subscriptionsRepo(db: Executor) {
  return {
    async insert(row: typeof subscriptions.$inferInsert, tx: Executor): Promise<SubscriptionRow> {
      const [inserted] = await tx.insert(subscriptions).values(row).returning();
      return inserted!;
    },
    async find(orgId: string | undefined, id: string, tx: Executor = db): Promise<SubscriptionRow | undefined> {
      const [row] = await tx
        .select()
        .from(subscriptions)
        .where(and(eq(subscriptions.id, id), orgId ? eq(subscriptions.orgId, orgId) : undefined));
      return row;
    },
    async lock(id: string, tx: Executor): Promise<SubscriptionRow | undefined> {
      const [row] = await tx.select().from(subscriptions).where(eq(subscriptions.id, id)).for('update');
      return row;
    },
    async lockBySession(sessionId: string, tx: Executor): Promise<SubscriptionRow | undefined> {
      const [row] = await tx.select().from(subscriptions).where(eq(subscriptions.checkoutSessionId, sessionId)).for('update');
      return row;
    },
    async update(id: string, changes: Partial<typeof subscriptions.$inferInsert>, tx: Executor = db): Promise<SubscriptionRow> {
      const [row] = await tx
        .update(subscriptions)
        .set({ ...changes, updatedAt: new Date() })
        .where(eq(subscriptions.id, id))
        .returning();
      return row!;
    },
    async logTransition(
      row: { subscriptionId: string; fromStatus: string | null; toStatus: string; actor: string; reason?: string | null },
      tx: Executor,
    ): Promise<void> {
      await tx.insert(subscriptionTransitions).values(row);
    },
    async transitions(subscriptionId: string, tx: Executor = db) {
      return tx
        .select()
        .from(subscriptionTransitions)
        .where(eq(subscriptionTransitions.subscriptionId, subscriptionId))
        .orderBy(subscriptionTransitions.seq);
    },
    /**
     * One page of subscriptions, newest first (ties by id), with the total counted up to
     * `TOTAL_CAP` (see `pageWithTotal`). `paging.after`: the last id of the previous page (see
     * `cursorPagingQuery`); a cursor naming no subscription of `filter.orgId` gives an empty page.
     */
    async list(
      filter: { orgId?: string; userId?: string; status?: SubscriptionStatus; offeringId?: string },
      paging: { limit: number; offset: number; after?: string },
      tx: Executor = db,
    ): Promise<Page<SubscriptionRow>> {
      const where = and(
        filter.orgId ? eq(subscriptions.orgId, filter.orgId) : undefined,
        filter.userId ? eq(subscriptions.userId, filter.userId) : undefined,
        filter.status ? eq(subscriptions.status, filter.status) : undefined,
        filter.offeringId ? eq(subscriptions.offeringId, filter.offeringId) : undefined,
      );
      const after = keysetAfter(
        { sort: subscriptions.createdAt, id: subscriptions.id, direction: 'desc' },
        paging.after,
        filter.orgId ? eq(subscriptions.orgId, filter.orgId) : undefined,
      );
      const rows = await tx
        .select()
        .from(subscriptions)
        .where(and(where, after))
        .orderBy(desc(subscriptions.createdAt), desc(subscriptions.id))
        .limit(paging.limit + 1)
        .offset(after ? 0 : paging.offset);
      return pageWithTotal(tx, rows, paging, { from: subscriptions, where });
    },
    /** What a user has committed (cents), in subscriptions that hold units; with `regCfSince`, in Reg CF offerings since that date. */
    async committedCents(filter: { orgId: string; userId: string; regCfSince?: Date }, tx: Executor = db): Promise<number> {
      const [row] = await tx
        .select({ total: sql<string>`coalesce(sum(${subscriptions.amountCents}), 0)` })
        .from(subscriptions)
        .innerJoin(offerings, eq(offerings.id, subscriptions.offeringId))
        .where(
          and(
            eq(subscriptions.orgId, filter.orgId),
            eq(subscriptions.userId, filter.userId),
            inArray(subscriptions.status, [...HOLDING_STATUSES]),
            filter.regCfSince ? and(eq(offerings.exemptionType, 'reg_cf'), gte(subscriptions.createdAt, filter.regCfSince)) : undefined,
          ),
        );
      return Number(row!.total);
    },
    /** Records a provider event id; false when it was already processed. */
    async recordPaymentEvent(event: { id: string; type: string; subscriptionId: string | null }, tx: Executor): Promise<boolean> {
      const rows = await tx.insert(paymentEvents).values(event).onConflictDoNothing().returning({ id: paymentEvents.id });
      return rows.length > 0;
    },
    async insertShare(row: typeof shares.$inferInsert, tx: Executor): Promise<ShareRow> {
      const [share] = await tx.insert(shares).values(row).returning();
      return share!;
    },
    async issuedUnits(securityClassId: string, tx: Executor): Promise<number> {
      const [row] = await tx
        .select({ units: sql<string>`coalesce(sum(${shares.units}), 0)` })
        .from(shares)
        // A cancelled entry's units are back in the class (a correction may re-issue them).
        .where(and(eq(shares.securityClassId, securityClassId), ne(shares.status, 'cancelled')));
      return Number(row!.units);
    },
  };
}

export type SubscriptionsRepo = ReturnType<typeof subscriptionsRepo>;
