import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModules } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { queryRows } from '../../src/platform/db/database.ts';
import { testKeyring } from '../support/harness.ts';
import { databaseAt, migrationsBefore } from '../support/migrations.ts';
import { webhookOrg } from '../support/webhook-deployment.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

// Before 0022 each delivery carried its event's payload (jsonb); now a message holds it once per
// event, as the body sent. A database with deliveries queued under the old shape must send them
// after the upgrade, with the payload they were queued with.
let before: Awaited<ReturnType<typeof databaseAt>>;
let receiver: Receiver;
beforeAll(async () => {
  before = await databaseAt(migrationsBefore('0022_webhook_messages'));
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
  await before.drop();
});

describe('migration 0022: one message per event', () => {
  it('moves each event payload into one message, and the dispatcher sends queued deliveries with it', async () => {
    const { database } = before;
    const keyring = testKeyring();
    const config = { ...loadConfig({}), allowInsecureHttp: true, webhookEgressAllowlist: '127.0.0.0/8' };
    const modules = createModules({ config, database, keyring });
    const { org, principal } = await webhookOrg(modules, 'Legacy');
    const first = await modules.notifications.endpoints.create(principal, { url: `${receiver.url}/a`, eventTypes: ['*'] });
    const second = await modules.notifications.endpoints.create(principal, { url: `${receiver.url}/b`, eventTypes: ['*'] });
    const eventId = '6f1d2c4e-0000-4000-8000-000000000001';
    const payload = {
      id: eventId,
      type: 'kyc.verification.approved',
      created_at: '2026-11-29T10:00:00.000Z',
      org_id: org.id,
      data: { verification_id: 'v-legacy', status: 'approved', note: 'quote " and ünïcode' },
    };
    // The old shape: the payload copied into both deliveries of the event; one delivered, one queued.
    await database.db.execute(sql`
      insert into webhook_deliveries (org_id, endpoint_id, event_id, event_type, payload, status, attempt_count, next_attempt_at, succeeded_at)
      values (${org.id}, ${first.id}, ${eventId}, ${payload.type}, ${JSON.stringify(payload)}::jsonb, 'succeeded', 1, null, now()),
             (${org.id}, ${second.id}, ${eventId}, ${payload.type}, ${JSON.stringify(payload)}::jsonb, 'pending', 0, now(), null)`);

    await database.migrate();

    const messages = await queryRows<{ id: string; org_id: string; event_type: string; body: string }>(
      database.db,
      sql`select id, org_id, event_type, body from webhook_messages`,
    );
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ id: eventId, org_id: org.id, event_type: payload.type });
    expect(JSON.parse(messages[0]!.body)).toEqual(payload);
    const columns = await queryRows<{ column_name: string }>(
      database.db,
      sql`select column_name from information_schema.columns where table_name = 'webhook_deliveries' and column_name = 'payload'`,
    );
    expect(columns).toEqual([]);

    const upgraded = createModules({ config, database, keyring });
    while (await upgraded.notifications.dispatcher.runOnce());
    expect(receiver.received).toHaveLength(1);
    expect(receiver.received[0]!.headers['webhook-id']).toBe(eventId);
    expect(JSON.parse(receiver.received[0]!.body)).toEqual(payload);
    await upgraded.notifications.close();
    await modules.notifications.close();
  });

  it('refuses a delivery whose message does not exist (the foreign key)', async () => {
    const { database } = before;
    const [endpoint] = await queryRows<{ id: string; org_id: string }>(database.db, sql`select id, org_id from webhook_endpoints limit 1`);
    const refused = await database.db
      .execute(
        sql`insert into webhook_deliveries (org_id, endpoint_id, event_id, event_type, status)
            values (${endpoint!.org_id}, ${endpoint!.id}, gen_random_uuid(), 'test.ping', 'pending')`,
      )
      .then(
        () => undefined,
        (error: { cause?: { code?: string }; code?: string }) => error.cause?.code ?? error.code,
      );
    expect(refused).toBe('23503'); // foreign_key_violation
  });
});
