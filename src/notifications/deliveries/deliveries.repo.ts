import { and, asc, desc, eq, gte, inArray, lte, sql } from 'drizzle-orm';
import { queryRows, type Executor } from '../../platform/db/database.ts';
import { webhookAttempts, webhookDeliveries } from '../notifications.tables.ts';

export type DeliveryRow = typeof webhookDeliveries.$inferSelect;
export type AttemptRow = typeof webhookAttempts.$inferSelect;
export type DeliveryStatus = DeliveryRow['status'];
export type DeliveryFilter = { orgId: string; endpointId?: string; eventType?: string; status?: DeliveryStatus; from?: Date; to?: Date };

/** Deliveries waiting at `now`: due (pending, their time has come), scheduled (pending, a retry later), sending (claimed). */
export type Backlog = { due: number; scheduled: number; sending: number; oldestDueAgeSeconds: number };

/** The most deliveries a list counts: past it, `total` is this and `total_capped` is true. */
export const TOTAL_CAP = 1000;

export function deliveriesRepo(db: Executor) {
  return {
    /**
     * The backlog at `now`; `oldestDueAgeSeconds` is how long the longest-waiting due delivery has
     * been due (0 when none). Each subquery reads one of the partial indexes on pending and sending
     * deliveries, so the cost follows the backlog, not the delivery history.
     */
    async backlog(now: Date, tx: Executor = db): Promise<Backlog> {
      const [row] = await queryRows<{ due: number; pending: number; sending: number; oldest: string | Date | null }>(
        tx,
        sql`select
          (select count(*)::int from ${webhookDeliveries} where status = 'pending' and next_attempt_at <= ${now.toISOString()}::timestamptz) as due,
          (select count(*)::int from ${webhookDeliveries} where status = 'pending') as pending,
          (select count(*)::int from ${webhookDeliveries} where status = 'sending') as sending,
          (select min(next_attempt_at) from ${webhookDeliveries} where status = 'pending') as oldest`,
      );
      const due = Number(row?.due ?? 0);
      const oldest = row?.oldest ? new Date(row.oldest).getTime() : now.getTime();
      return {
        due,
        scheduled: Number(row?.pending ?? 0) - due,
        sending: Number(row?.sending ?? 0),
        oldestDueAgeSeconds: Math.max(0, (now.getTime() - oldest) / 1000),
      };
    },
    async insertMany(rows: (typeof webhookDeliveries.$inferInsert)[], tx: Executor): Promise<DeliveryRow[]> {
      return rows.length === 0 ? [] : tx.insert(webhookDeliveries).values(rows).returning();
    },
    /** Takes due deliveries (and ones whose worker died mid-send) under a lease. */
    async claimDue(now: Date, leaseUntil: Date, limit: number, tx: Executor): Promise<DeliveryRow[]> {
      const abandoned = await tx
        .select({ id: webhookDeliveries.id })
        .from(webhookDeliveries)
        .where(and(eq(webhookDeliveries.status, 'sending'), lte(webhookDeliveries.leaseUntil, now)))
        .orderBy(asc(webhookDeliveries.leaseUntil))
        .limit(limit)
        .for('update', { skipLocked: true });
      const due = await tx
        .select({ id: webhookDeliveries.id })
        .from(webhookDeliveries)
        .where(and(eq(webhookDeliveries.status, 'pending'), lte(webhookDeliveries.nextAttemptAt, now)))
        .orderBy(asc(webhookDeliveries.nextAttemptAt))
        .limit(limit - abandoned.length)
        .for('update', { skipLocked: true });
      const ids = [...abandoned, ...due].map((row) => row.id);
      if (ids.length === 0) return [];
      return tx
        .update(webhookDeliveries)
        .set({ status: 'sending', leaseUntil, updatedAt: now })
        .where(inArray(webhookDeliveries.id, ids))
        .returning();
    },
    /**
     * Gives claimed deliveries back unsent (a worker shutting down): due now, so another worker
     * takes them at once. Only claims still held under `leaseUntil` are touched: one that expired
     * and was claimed again belongs to the other worker. Returns how many were released.
     */
    async release(ids: string[], leaseUntil: Date, now: Date, tx: Executor): Promise<number> {
      if (ids.length === 0) return 0;
      const rows = await tx
        .update(webhookDeliveries)
        .set({ status: 'pending', nextAttemptAt: now, leaseUntil: null, updatedAt: now })
        .where(
          and(inArray(webhookDeliveries.id, ids), eq(webhookDeliveries.status, 'sending'), eq(webhookDeliveries.leaseUntil, leaseUntil)),
        )
        .returning({ id: webhookDeliveries.id });
      return rows.length;
    },
    /**
     * Sends cut short by a worker's shutdown: due again at once, with `lastError`, no schedule step
     * used. Only deliveries still `sending` are touched.
     */
    async requeueInterrupted(ids: string[], lastError: string, now: Date, tx: Executor): Promise<void> {
      if (ids.length === 0) return;
      await tx
        .update(webhookDeliveries)
        .set({ status: 'pending', nextAttemptAt: now, leaseUntil: null, lastStatusCode: null, lastError, updatedAt: now })
        .where(and(inArray(webhookDeliveries.id, ids), eq(webhookDeliveries.status, 'sending')));
    },
    async find(orgId: string, id: string, tx: Executor = db): Promise<DeliveryRow | undefined> {
      const [row] = await tx
        .select()
        .from(webhookDeliveries)
        .where(and(eq(webhookDeliveries.orgId, orgId), eq(webhookDeliveries.id, id)));
      return row;
    },
    async lock(id: string, tx: Executor): Promise<DeliveryRow | undefined> {
      const [row] = await tx.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id)).for('update');
      return row;
    },
    async update(id: string, changes: Partial<typeof webhookDeliveries.$inferInsert>, tx: Executor): Promise<void> {
      await tx.update(webhookDeliveries).set(changes).where(eq(webhookDeliveries.id, id));
    },
    async insertAttempts(attempts: (typeof webhookAttempts.$inferInsert)[], tx: Executor): Promise<AttemptRow[]> {
      return attempts.length === 0 ? [] : tx.insert(webhookAttempts).values(attempts).returning();
    },
    /** A delivery's attempts in order; an attempt's number is its place in that history. */
    async attempts(deliveryId: string, tx: Executor = db): Promise<(AttemptRow & { attemptNumber: number })[]> {
      const rows = await tx
        .select()
        .from(webhookAttempts)
        .where(eq(webhookAttempts.deliveryId, deliveryId))
        .orderBy(asc(webhookAttempts.createdAt), asc(webhookAttempts.id));
      return rows.map((row, index) => ({ ...row, attemptNumber: index + 1 }));
    },
    async markSucceeded(ids: string[], statusCode: number, now: Date, tx: Executor): Promise<void> {
      if (ids.length === 0) return;
      await tx
        .update(webhookDeliveries)
        .set({
          status: 'succeeded',
          attemptCount: sql`${webhookDeliveries.attemptCount} + 1`,
          succeededAt: now,
          nextAttemptAt: null,
          leaseUntil: null,
          lastStatusCode: statusCode,
          lastError: null,
          updatedAt: now,
        })
        .where(and(inArray(webhookDeliveries.id, ids), eq(webhookDeliveries.status, 'sending')));
    },
    async cancel(ids: string[], now: Date, tx: Executor): Promise<void> {
      if (ids.length === 0) return;
      await tx
        .update(webhookDeliveries)
        .set({ status: 'cancelled', nextAttemptAt: null, leaseUntil: null, updatedAt: now })
        .where(inArray(webhookDeliveries.id, ids));
    },
    /**
     * One page of the org's deliveries, newest first (ties by id). `paging.after` is the id of the
     * last delivery of the previous page (cursor paging: the cost does not grow with depth, and
     * deliveries created meanwhile do not shift the page); without it, `offset` rows are skipped.
     * A cursor naming no delivery of the org gives an empty page. `total` counts the matches up to
     * `TOTAL_CAP`, and stops there (`totalCapped`): an exact count would read every match.
     */
    async list(filter: DeliveryFilter, paging: { limit: number; offset: number; after?: string }, tx: Executor = db) {
      const after = paging.after
        ? sql`(${webhookDeliveries.createdAt}, ${webhookDeliveries.id}) < (select created_at, id from ${webhookDeliveries} where id = ${paging.after} and org_id = ${filter.orgId})`
        : undefined;
      const where = and(
        eq(webhookDeliveries.orgId, filter.orgId),
        filter.endpointId ? eq(webhookDeliveries.endpointId, filter.endpointId) : undefined,
        filter.eventType ? eq(webhookDeliveries.eventType, filter.eventType) : undefined,
        filter.status ? eq(webhookDeliveries.status, filter.status) : undefined,
        filter.from ? gte(webhookDeliveries.createdAt, filter.from) : undefined,
        filter.to ? lte(webhookDeliveries.createdAt, filter.to) : undefined,
      );
      const rows = await tx
        .select()
        .from(webhookDeliveries)
        .where(and(where, after))
        .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
        .limit(paging.limit)
        .offset(after ? 0 : paging.offset);
      const [counted] = await queryRows<{ total: number }>(
        tx,
        sql`select count(*)::int as total from (select 1 from ${webhookDeliveries} where ${where} limit ${TOTAL_CAP + 1}) as matches`,
      );
      const total = Number(counted?.total ?? 0);
      return { rows, total: Math.min(total, TOTAL_CAP), totalCapped: total > TOTAL_CAP };
    },
    /**
     * Deletes up to `limit` finished deliveries (succeeded, exhausted, cancelled, skipped) created
     * before `before`, oldest first, with their attempts (by cascade); returns how many. Pending
     * and sending deliveries are never deleted.
     */
    async prune(before: Date, limit: number, tx: Executor = db): Promise<number> {
      const rows = await queryRows<{ id: string }>(
        tx,
        sql`delete from ${webhookDeliveries} where id in (
              select id from ${webhookDeliveries}
              where ${webhookDeliveries.createdAt} < ${before.toISOString()}::timestamptz
                and ${webhookDeliveries.status} in ('succeeded', 'exhausted', 'cancelled', 'skipped')
              order by ${webhookDeliveries.createdAt} limit ${limit})
            returning id`,
      );
      return rows.length;
    },
    /**
     * Deliveries of an endpoint created since `since` that were never delivered (exhausted,
     * cancelled when the endpoint was disabled, skipped while it was disabled) go back in the
     * queue, due `now`. Returns how many.
     */
    async requeueFailed(endpointId: string, since: Date, now: Date, tx: Executor = db): Promise<number> {
      const rows = await tx
        .update(webhookDeliveries)
        .set({ status: 'pending', attemptCount: 0, nextAttemptAt: now, leaseUntil: null, updatedAt: now })
        .where(
          and(
            eq(webhookDeliveries.endpointId, endpointId),
            inArray(webhookDeliveries.status, ['exhausted', 'cancelled', 'skipped']),
            gte(webhookDeliveries.createdAt, since),
          ),
        )
        .returning({ id: webhookDeliveries.id });
      return rows.length;
    },
  };
}

export type DeliveriesRepo = ReturnType<typeof deliveriesRepo>;
