import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionConfig, queryRows } from '../../src/platform/db/database.ts';
import { OUTBOX_CHANNEL } from '../../src/platform/events/outbox.ts';
import { startTestApp, usingPostgres, type TestApp } from '../support/harness.ts';
import { startReceiver } from '../support/webhook-receiver.ts';

describe('connectionConfig', () => {
  /** What pg will connect with: its own reading of the settings (no connection is made). */
  const reads = (config: pg.ClientConfig) => {
    const { user, password, host, port, database, options, ssl } = (
      new pg.Client(config) as unknown as { connectionParameters: Record<string, unknown> }
    ).connectionParameters;
    return { user, password, host, port, database, options, ssl };
  };

  it('adds plan_cache_mode after the options the URL gives', () => {
    expect(
      reads(connectionConfig('postgres://app:p%40ss@db.example:6543/tranche?sslmode=require&options=-c%20work_mem%3D8MB')),
    ).toMatchObject({
      user: 'app',
      password: 'p@ss',
      host: 'db.example',
      port: 6543,
      database: 'tranche',
      options: '-c work_mem=8MB -c plan_cache_mode=force_custom_plan',
    });
    expect(reads(connectionConfig('postgres://127.0.0.1/test')).options).toBe('-c plan_cache_mode=force_custom_plan');
  });

  // pg must connect where and as the operator's URL says, whatever its shape. Found by review: a
  // URL rewritten with the option (an earlier way of adding it) made pg read a password with a raw
  // `%` (`pa%ss`) and the option itself still encoded, and PostgreSQL refused every connection; a
  // socket URL with a user and no host went without the option.
  it.each([
    'postgres://app:pa%ss@db.example:6543/tranche',
    'postgres://app:pa ss@db.example/tranche?sslmode=disable',
    'postgres://app:100%@db.example/tranche?options=-c%20work_mem%3D8MB',
    'postgres://app@/tranche?host=/var/run/postgresql',
    'postgres://app:s3cret@/tranche?host=/var/run/postgresql&application_name=a+b',
    'postgres:///tranche?host=/tmp',
    'postgresql://app:p%40ss@[::1]:5432/tranche',
    'postgres://app:p@%2Fvar%2Frun%2Fpostgresql/tranche',
  ])('%s: pg connects as the URL says, with the option', (given) => {
    const { options: optionsGiven, ...given_ } = reads({ connectionString: given });
    const { options, ...ours } = reads(connectionConfig(given));
    expect(ours).toEqual(given_);
    expect(options).toBe([optionsGiven, '-c plan_cache_mode=force_custom_plan'].filter(Boolean).join(' '));
  });
});

// PostgreSQL keeps a generic plan for a named prepared statement after five runs until the table's
// statistics change. The dispatcher's statements are named (`runPrepared`), and a queue table is
// nearly empty when they first run: with autovacuum off, or in the minute before it analyzes, the
// plan made then (a sequential scan of a table of ten rows) was kept as the table grew.
describe.runIf(usingPostgres())('the webhook queue on PostgreSQL', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ workerPollMs: 50 });
  });
  afterAll(() => t.close());

  const stats = async () => {
    // A backend reports its table statistics at the end of a transaction at most once a second
    // (else ten seconds later): a statement after a second's pause makes it report them.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await t.db.execute(sql`select 1`);
    const [row] = await queryRows<{ seq_scan: string; last_analyze: Date | null }>(
      t.db,
      sql`select seq_scan, last_analyze from pg_stat_user_tables where relname = 'webhook_deliveries'`,
    );
    return { seqScans: Number(row!.seq_scan), lastAnalyze: row!.last_analyze };
  };

  it('connections plan the named statements on each run', async () => {
    const [mode] = await t.database.runPrepared<{ plan_cache_mode: string }>('tranche_test_plan_cache_mode', sql`show plan_cache_mode`);
    expect(mode!.plan_cache_mode).toBe('force_custom_plan');
  });

  it('plans the result statement for the queue as it is now, not as it was at its first runs', async () => {
    const deliveries = t.modules.notifications.deliveries;
    const record = () =>
      deliveries.recordSucceeded(
        Array.from({ length: 20 }, () => ({
          deliveryId: randomUUID(),
          url: 'https://example.test/hook',
          statusCode: 200,
          durationMs: 3,
          responseExcerpt: null,
          errorKind: null,
          errorMessage: null,
          at: new Date(),
        })),
      );
    // First runs on an almost empty queue (one after another: one connection, one prepared statement).
    for (let i = 0; i < 12; i++) await record();

    // The queue grows to 60 000 deliveries, with no ANALYZE since.
    const created = await t.post(
      '/notifications/webhooks',
      { url: 'https://example.test/hook', eventTypes: ['*'] },
      { 'x-api-key': t.apiKey },
    );
    expect(created.status).toBe(201);
    const eventId = randomUUID();
    await deliveries.insertMessage({ id: eventId, orgId: t.org.id, eventType: 'kyc.verification.approved', body: '{}' });
    await t.db.execute(
      sql`insert into webhook_deliveries (org_id, endpoint_id, event_id, event_type, status)
          select ${t.org.id}::uuid, ${created.body.data.id}::uuid, ${eventId}::uuid, 'kyc.verification.approved', 'succeeded'
          from generate_series(1, 60000)`,
    );

    const before = await stats();
    for (let i = 0; i < 12; i++) await record();
    const after = await stats();
    // Each run finds its deliveries by primary key: no run reads the whole table.
    expect(after.seqScans - before.seqScans).toBe(0);
    // Its deliveries go with it (sends to it would take the next test's worker's time).
    expect((await t.delete(`/notifications/webhooks/${created.body.data.id}`, { 'x-api-key': t.apiKey })).status).toBe(200);
  });

  it('analyzes and vacuums the queue tables itself when autovacuum is off, and leaves them to it when it is on', async () => {
    const [setting] = await queryRows<{ autovacuum: string }>(t.db, sql`select current_setting('autovacuum') as autovacuum`);
    const receiver = await startReceiver();
    try {
      const created = await t.post(
        '/notifications/webhooks',
        { url: `${receiver.url}/upkeep`, eventTypes: ['*'] },
        { 'x-api-key': t.apiKey },
      );
      expect(created.status).toBe(201);
      await t.db.execute(sql`select pg_stat_reset_single_table_counters('webhook_deliveries'::regclass)`);
      const worker = await t.modules.notifications.startWorker();
      try {
        // 2 500 events to one endpoint: past the 2 000 changed rows after which the worker analyzes.
        await t.db.execute(
          sql`insert into outbox_events (org_id, type, data)
              select ${t.org.id}::uuid, 'kyc.verification.approved', jsonb_build_object('verification_id', 'v-' || n)
              from generate_series(1, 2500) as n`,
        );
        await t.db.execute(sql`select pg_notify(${OUTBOX_CHANNEL}, '')`);
        await receiver.waitFor(2500, 60_000);
      } finally {
        await worker.stop();
      }
      const { lastAnalyze } = await stats();
      if (setting!.autovacuum === 'off') expect(lastAnalyze).not.toBeNull();
      else expect(lastAnalyze).toBeNull();
    } finally {
      await receiver.close();
    }
  }, 90_000);
});
