import { and, asc, desc, eq, gte, inArray, lte, sql, type SQL } from 'drizzle-orm';
import { queryRows, type Executor, type RunPrepared } from '../../platform/db/database.ts';
import { keysetAfter, pageWithTotal, type Page } from '../../platform/db/pages.ts';
import { outboxEvents } from '../../platform/platform.tables.ts';
import { webhookAttempts, webhookDeliveries, webhookEndpoints, webhookMessages } from '../notifications.tables.ts';

export type DeliveryRow = typeof webhookDeliveries.$inferSelect;
export type AttemptRow = typeof webhookAttempts.$inferSelect;
export type DeliveryStatus = DeliveryRow['status'];
export type DeliveryFilter = { orgId: string; endpointId?: string; eventType?: string; status?: DeliveryStatus; from?: Date; to?: Date };

/** Deliveries waiting at `now`: due (pending, their time has come), scheduled (pending, a retry later), sending (claimed). */
export type Backlog = { due: number; scheduled: number; sending: number; oldestDueAgeSeconds: number };

/**
 * A delivery taken under a lease by `claim`, with what sending it needs: the message body (the
 * exact bytes to sign and send), when its event happened, and its endpoint as it is now (null when
 * the endpoint is gone).
 */
export type ClaimedDelivery = {
  id: string;
  orgId: string;
  endpointId: string;
  eventId: string;
  eventType: string;
  /** Scheduled attempts made before this one. */
  attemptCount: number;
  leaseUntil: Date;
  body: string;
  eventCreatedAt: Date;
  endpoint: ClaimedEndpoint | null;
};

/** The endpoint of a claimed delivery, read in the claiming statement. */
export type ClaimedEndpoint = {
  id: string;
  orgId: string;
  url: string;
  status: 'active' | 'disabled';
  /** Bumped by every change of the endpoint or its secrets (the dispatcher's secret cache key). */
  version: number;
  failingSince: Date | null;
};

/** One recorded scheduled attempt (`recordSucceeded`, `recordFailed`); `at` is when the answer came. */
export type AttemptResult = {
  deliveryId: string;
  url: string;
  statusCode: number | null;
  durationMs: number;
  responseExcerpt: string | null;
  errorKind: AttemptRow['errorKind'];
  errorMessage: string | null;
  at: Date;
};

const asDate = (value: Date | string) => (value instanceof Date ? value : new Date(value));

/**
 * The deliveries log and the dispatcher's statements. `runPrepared` (the database's, see
 * `RunPrepared`) runs the dispatcher's hot statements as prepared statements when they run outside
 * a transaction; without it they run as plain queries.
 */
export function deliveriesRepo(db: Executor, runPrepared?: RunPrepared) {
  const hot = <T>(name: string, query: SQL, tx: Executor): Promise<T[]> =>
    runPrepared && tx === db ? runPrepared<T>(name, query) : queryRows<T>(tx, query);
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
    /**
     * Fans out up to `limit` undispatched outbox events, oldest first, in one statement: each event
     * becomes one message (its body built here, once) and one delivery per endpoint of its org
     * subscribed to its type or to `*` (`pending`, due at `now`; `skipped` for a disabled endpoint,
     * which recover sends later), and is marked dispatched. Events of no org, or that no endpoint
     * subscribes to, are marked dispatched with nothing queued. Concurrent callers take disjoint
     * events (`FOR UPDATE SKIP LOCKED`). Returns how many events it took.
     */
    async fanOut(limit: number, now: Date, tx: Executor = db): Promise<number> {
      const [row] = await hot<{ events: number }>(
        'tranche_webhook_fan_out',
        sql`with events as (
              select id, org_id, type, data, created_at from ${outboxEvents}
              where dispatched_at is null order by created_at limit ${limit} for update skip locked
            ), targets as (
              select e.id as event_id, e.org_id, e.type, w.id as endpoint_id, w.status
              from events e join ${webhookEndpoints} w on w.org_id = e.org_id and w.event_types && array[e.type, '*']::text[]
            ), messages as (
              insert into ${webhookMessages} (id, org_id, event_type, body, created_at)
              select e.id, e.org_id, e.type,
                '{"id":' || to_json(e.id)::text || ',"type":' || to_json(e.type)::text
                  || ',"created_at":"' || to_char(e.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                  || '","org_id":' || to_json(e.org_id)::text || ',"data":' || e.data::text || '}',
                e.created_at
              from events e where e.id in (select event_id from targets)
              on conflict (id) do nothing
            ), deliveries as (
              insert into ${webhookDeliveries} (org_id, endpoint_id, event_id, event_type, status, next_attempt_at)
              select org_id, endpoint_id, event_id, type,
                case when status = 'active' then 'pending' else 'skipped' end,
                case when status = 'active' then ${now.toISOString()}::timestamptz end
              from targets
            ), dispatched as (
              update ${outboxEvents} set dispatched_at = now() where id in (select id from events)
            )
            select count(*)::int as events from events`,
        tx,
      );
      return Number(row?.events ?? 0);
    },
    /** Stores a message that no outbox event made (a test ping); `body` is the JSON sent. */
    async insertMessage(message: typeof webhookMessages.$inferInsert, tx: Executor = db): Promise<void> {
      await tx.insert(webhookMessages).values(message);
    },
    /** The body sent for an event (`webhook_messages.body`), or undefined when it was pruned. */
    async messageBody(eventId: string, tx: Executor = db): Promise<string | undefined> {
      const [row] = await tx.select({ body: webhookMessages.body }).from(webhookMessages).where(eq(webhookMessages.id, eventId));
      return row?.body;
    },
    async insertMany(rows: (typeof webhookDeliveries.$inferInsert)[], tx: Executor): Promise<DeliveryRow[]> {
      return rows.length === 0 ? [] : tx.insert(webhookDeliveries).values(rows).returning();
    },
    /**
     * Takes up to `limit` deliveries under a lease until `leaseUntil`, in one statement: first ones
     * whose worker died mid-send (their lease ended), then due ones, oldest due first; concurrent
     * claimers skip each other's rows. Each comes with its message body and its endpoint as it is
     * at the claim.
     */
    async claim(now: Date, leaseUntil: Date, limit: number, tx: Executor = db): Promise<ClaimedDelivery[]> {
      const rows = await hot<{
        id: string;
        org_id: string;
        endpoint_id: string;
        event_id: string;
        event_type: string;
        attempt_count: number;
        body: string;
        event_created_at: Date | string;
        url: string | null;
        endpoint_org_id: string | null;
        endpoint_status: 'active' | 'disabled' | null;
        version: number | null;
        failing_since: Date | string | null;
      }>(
        'tranche_webhook_claim',
        sql`with abandoned as (
              select id from ${webhookDeliveries} where status = 'sending' and lease_until <= ${now.toISOString()}::timestamptz
              order by lease_until limit ${limit} for update skip locked
            ), due as (
              select id from ${webhookDeliveries} where status = 'pending' and next_attempt_at <= ${now.toISOString()}::timestamptz
              order by next_attempt_at limit ${limit} for update skip locked
            ), picked as (
              select id from (select id, 0 as rank from abandoned union all select id, 1 from due) as candidates order by rank limit ${limit}
            ), claimed as (
              update ${webhookDeliveries} d set status = 'sending', lease_until = ${leaseUntil.toISOString()}::timestamptz,
                updated_at = ${now.toISOString()}::timestamptz
              from picked where d.id = picked.id
              returning d.id, d.org_id, d.endpoint_id, d.event_id, d.event_type, d.attempt_count
            )
            select c.*, m.body, m.created_at as event_created_at, w.url, w.org_id as endpoint_org_id,
              w.status as endpoint_status, w.version, w.failing_since
            from claimed c join ${webhookMessages} m on m.id = c.event_id
            left join ${webhookEndpoints} w on w.id = c.endpoint_id`,
        tx,
      );
      return rows.map((row) => ({
        id: row.id,
        orgId: row.org_id,
        endpointId: row.endpoint_id,
        eventId: row.event_id,
        eventType: row.event_type,
        attemptCount: Number(row.attempt_count),
        leaseUntil,
        body: row.body,
        eventCreatedAt: asDate(row.event_created_at),
        endpoint:
          row.url === null
            ? null
            : {
                id: row.endpoint_id,
                orgId: row.endpoint_org_id!,
                url: row.url,
                status: row.endpoint_status!,
                version: Number(row.version),
                failingSince: row.failing_since === null ? null : asDate(row.failing_since),
              },
      }));
    },
    /**
     * Records successful scheduled attempts in one statement: an attempt row each, and each
     * delivery still `sending` becomes `succeeded` (one whose lease passed to another worker was
     * delivered all the same). A delivery deleted meanwhile (its endpoint was deleted) gets no
     * attempt row: inserting one would break the foreign key and fail the whole statement, so every
     * other delivery answered in the same turn would be sent again when its lease ends. The rows
     * kept are locked (`for key share`) so that such a delete waits for this statement.
     */
    async recordSucceeded(results: AttemptResult[], tx: Executor = db): Promise<void> {
      if (results.length === 0) return;
      await hot(
        'tranche_webhook_record_succeeded',
        sql`with results as (
              select * from jsonb_to_recordset(${JSON.stringify(results)}::jsonb)
                as r("deliveryId" uuid, url text, "statusCode" int, "durationMs" int, "responseExcerpt" text, at timestamptz)
            ), existing as (
              select id from ${webhookDeliveries} where id in (select "deliveryId" from results) for key share
            ), succeeded as (
              update ${webhookDeliveries} d set status = 'succeeded', attempt_count = d.attempt_count + 1, succeeded_at = r.at,
                next_attempt_at = null, lease_until = null, last_status_code = r."statusCode", last_error = null, updated_at = r.at
              from results r where d.id = r."deliveryId" and d.status = 'sending'
            )
            -- The insert is the main statement, so "existing" locks its rows before the update (a
            -- CTE nothing reads runs after it) changes them: a row this statement changed cannot be
            -- locked again by it, and would be left out.
            insert into ${webhookAttempts} (delivery_id, trigger, url, status_code, duration_ms, response_excerpt, created_at)
            select "deliveryId", 'scheduled', url, "statusCode", "durationMs", "responseExcerpt", at
            from results join existing on existing.id = results."deliveryId"`,
        tx,
      );
    },
    /**
     * Records failed scheduled attempts in one statement, each only while its delivery is still
     * held under the lease it was claimed with (`leaseUntil`): the delivery goes back to `pending`
     * due at `nextAttemptAt`, or becomes `exhausted` when that is null, with its attempt row.
     * Returns the deliveries it recorded, with their attempt count after this attempt; the others
     * had passed to another worker, which records its own attempt.
     */
    async recordFailed(
      results: (AttemptResult & { leaseUntil: Date; nextAttemptAt: Date | null })[],
      tx: Executor,
    ): Promise<{ id: string; attemptCount: number }[]> {
      if (results.length === 0) return [];
      const rows = await queryRows<{ id: string; attempt_count: number }>(
        tx,
        sql`with results as (
              select * from jsonb_to_recordset(${JSON.stringify(results)}::jsonb)
                as r("deliveryId" uuid, url text, "statusCode" int, "durationMs" int, "responseExcerpt" text, "errorKind" text,
                     "errorMessage" text, at timestamptz, "leaseUntil" timestamptz, "nextAttemptAt" timestamptz)
            ), recorded as (
              update ${webhookDeliveries} d
              set status = case when r."nextAttemptAt" is null then 'exhausted' else 'pending' end,
                attempt_count = d.attempt_count + 1, next_attempt_at = r."nextAttemptAt", lease_until = null,
                last_status_code = r."statusCode", last_error = r."errorMessage", updated_at = r.at
              from results r where d.id = r."deliveryId" and d.status = 'sending' and d.lease_until = r."leaseUntil"
              returning d.id, d.attempt_count
            ), attempts as (
              insert into ${webhookAttempts} (delivery_id, trigger, url, status_code, duration_ms, response_excerpt, error_kind, error_message, created_at)
              select r."deliveryId", 'scheduled', r.url, r."statusCode", r."durationMs", r."responseExcerpt", r."errorKind", r."errorMessage", r.at
              from results r join recorded on recorded.id = r."deliveryId"
            )
            select id, attempt_count from recorded`,
      );
      return rows.map((row) => ({ id: row.id, attemptCount: Number(row.attempt_count) }));
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
     * used. Only deliveries still `sending` under the lease they were claimed with (`leaseUntil`)
     * are touched: one whose lease ended and was claimed again belongs to the other worker, which
     * may be sending it right now. Returns the ids requeued; their rows stay locked until `tx` ends.
     */
    async requeueInterrupted(
      interrupted: { id: string; leaseUntil: Date }[],
      lastError: string,
      now: Date,
      tx: Executor,
    ): Promise<Set<string>> {
      if (interrupted.length === 0) return new Set();
      const rows = await queryRows<{ id: string }>(
        tx,
        sql`with held as (
              select * from jsonb_to_recordset(${JSON.stringify(interrupted)}::jsonb) as h(id uuid, "leaseUntil" timestamptz)
            )
            update ${webhookDeliveries} d
            set status = 'pending', next_attempt_at = ${now.toISOString()}::timestamptz, lease_until = null,
              last_status_code = null, last_error = ${lastError}, updated_at = ${now.toISOString()}::timestamptz
            from held where d.id = held.id and d.status = 'sending' and d.lease_until = held."leaseUntil"
            returning d.id`,
      );
      return new Set(rows.map((row) => row.id));
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
     * `TOTAL_CAP` (`platform/db/pages.ts`), and stops there (`totalCapped`): an exact count would
     * read every match.
     */
    async list(
      filter: DeliveryFilter,
      paging: { limit: number; offset: number; after?: string },
      tx: Executor = db,
    ): Promise<Page<DeliveryRow>> {
      const after = keysetAfter(
        { sort: webhookDeliveries.createdAt, id: webhookDeliveries.id, direction: 'desc' },
        paging.after,
        eq(webhookDeliveries.orgId, filter.orgId),
      );
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
        .limit(paging.limit + 1)
        .offset(after ? 0 : paging.offset);
      return pageWithTotal(tx, rows, paging, { from: webhookDeliveries, where });
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
     * Deletes up to `limit` messages created before `before` that no delivery is left of, oldest
     * first; returns how many. Run after `prune`.
     */
    async pruneMessages(before: Date, limit: number, tx: Executor = db): Promise<number> {
      const rows = await queryRows<{ id: string }>(
        tx,
        sql`delete from ${webhookMessages} where id in (
              select m.id from ${webhookMessages} m
              where m.created_at < ${before.toISOString()}::timestamptz
                and not exists (select 1 from ${webhookDeliveries} d where d.event_id = m.id)
              order by m.created_at limit ${limit})
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
