import { sql } from 'drizzle-orm';
import { queryRows, type Executor } from '../db/database.ts';
import { outboxEvents } from '../platform.tables.ts';

export const OUTBOX_CHANNEL = 'tranche_outbox';

/** `data` carries ids and statuses only, never PII: it leaves the system in webhook payloads. */
export type DomainEvent = { orgId: string | null; type: string; data: Record<string, unknown> };

/**
 * Records an event in the caller's transaction, so it exists exactly when the change that caused
 * it commits. The notification wakes listening workers on commit (PostgreSQL defers NOTIFY).
 */
export async function publish(tx: Executor, event: DomainEvent): Promise<string> {
  const [row] = await tx
    .insert(outboxEvents)
    .values({ orgId: event.orgId, type: event.type, data: event.data })
    .returning({ id: outboxEvents.id });
  await tx.execute(sql`select pg_notify(${OUTBOX_CHANNEL}, ${row!.id})`);
  return row!.id;
}

export type OutboxEvent = typeof outboxEvents.$inferSelect;

/**
 * Deletes up to `limit` dispatched events created before `before`, oldest first (through the
 * index on `created_at`); returns how many. Undispatched events are never deleted.
 */
export async function pruneDispatched(db: Executor, before: Date, limit: number): Promise<number> {
  const rows = await queryRows<{ id: string }>(
    db,
    sql`delete from ${outboxEvents} where id in (
          select id from ${outboxEvents}
          where ${outboxEvents.dispatchedAt} is not null and ${outboxEvents.createdAt} < ${before.toISOString()}::timestamptz
          order by ${outboxEvents.createdAt} limit ${limit})
        returning id`,
  );
  return rows.length;
}

/**
 * The outbox lag: events not yet dispatched (`pending`) and how long the oldest has waited, in
 * seconds (0 when none). Both read the partial index on undispatched events, so this stays cheap.
 */
export async function outboxBacklog(db: Executor): Promise<{ pending: number; oldestAgeSeconds: number }> {
  const [row] = await queryRows<{ pending: number; oldest_age_seconds: number | string | null }>(
    db,
    sql`select count(*)::int as pending,
          coalesce(extract(epoch from now() - min(${outboxEvents.createdAt})), 0)::float8 as oldest_age_seconds
        from ${outboxEvents} where ${outboxEvents.dispatchedAt} is null`,
  );
  return { pending: Number(row?.pending ?? 0), oldestAgeSeconds: Math.max(0, Number(row?.oldest_age_seconds ?? 0)) };
}
