import { eq, inArray, sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import type { HttpSender, SendResult } from '../../src/notifications/http-sender.ts';
import { webhookAttempts, webhookDeliveries, webhookEndpoints, webhookSecrets } from '../../src/notifications/notifications.tables.ts';
import { queryRows } from '../../src/platform/db/database.ts';
import type { TestApp } from '../support/harness.ts';
import { webhookSuite } from '../support/webhook-suite.ts';

// Faults around a delivery that is not the endpoint's answer: a signing secret that cannot be
// opened, a deadlock while the results are recorded, a worker interrupted after its lease passed
// to another worker. Each must leave the other deliveries of the claim delivered and recorded.

const { app, receiver, endpoint, emit, deliveriesOf, dispatcherWith } = webhookSuite({ webhookTimeoutMs: 10_000 });
let t: TestApp;
beforeAll(() => {
  t = app();
});
const attemptsOf = (deliveryIds: string[]) => t.db.select().from(webhookAttempts).where(inArray(webhookAttempts.deliveryId, deliveryIds));

describe('delivery error: an endpoint whose signing secret cannot be unsealed', () => {
  it('fails only that endpoint’s deliveries (a failed attempt, retried on the schedule); the others of the claim are sent', async () => {
    const good = await receiver();
    const bad = await receiver();
    const kept = await endpoint(`${good.url}/hook`);
    const broken = await endpoint(`${bad.url}/hook`);
    // The sealed secret no longer opens (a corrupted row, or its master key removed from the keyring).
    await t.db
      .update(webhookSecrets)
      .set({ ciphertext: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })
      .where(eq(webhookSecrets.endpointId, broken.id));
    for (let i = 0; i < 3; i++) await emit({ verification_id: `v-${i}` });
    const logsBefore = t.logs.length;

    await t.modules.notifications.dispatcher.runOnce();

    expect(good.received).toHaveLength(3);
    expect(bad.received).toHaveLength(0);
    const rows = await deliveriesOf([kept.id, broken.id]);
    expect(rows.filter((row) => row.status === 'sending')).toEqual([]);
    expect(rows.filter((row) => row.endpointId === kept.id).map((row) => row.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    const failed = rows.filter((row) => row.endpointId === broken.id);
    expect(failed).toHaveLength(3);
    for (const row of failed) {
      expect(row).toMatchObject({ status: 'pending', attemptCount: 1, lastError: 'endpoint secret cannot be unsealed' });
      // The first step of the schedule (5 s, ±20 % jitter), like any failed attempt.
      const delaySeconds = (row.nextAttemptAt!.getTime() - row.updatedAt.getTime()) / 1000;
      expect(delaySeconds).toBeGreaterThanOrEqual(4);
      expect(delaySeconds).toBeLessThanOrEqual(6);
    }
    const attempts = await attemptsOf(failed.map((row) => row.id));
    expect(attempts.map((attempt) => [attempt.errorKind, attempt.errorMessage, attempt.statusCode])).toEqual(
      Array.from({ length: 3 }, () => ['secret', 'endpoint secret cannot be unsealed', null]),
    );
    // The endpoint counts as failing (disabled after WEBHOOK_DISABLE_AFTER_HOURS like any other).
    const [endpointRow] = await t.db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, broken.id));
    expect(endpointRow!.failingSince).not.toBeNull();

    // Logged once for the endpoint (not per delivery), naming it, without any secret.
    const logged = t.logs.slice(logsBefore).join('');
    const lines = logged
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === 'endpoint secret cannot be unsealed');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ endpointId: broken.id, deliveries: 3 });
    expect(logged).not.toContain(kept.secret.replace(/^whsec_/, ''));
    expect(logged).not.toContain(broken.secret.replace(/^whsec_/, ''));

    // A manual retry records the same failed attempt (it answered 500 before), and sends nothing.
    const retried = await t.post(`/notifications/deliveries/${failed[0]!.id}/retry`, {}, { 'x-api-key': t.apiKey });
    expect(retried.status).toBe(200);
    expect(retried.body.data).toMatchObject({
      trigger: 'manual',
      error_kind: 'secret',
      error_message: 'endpoint secret cannot be unsealed',
    });
    expect(bad.received).toHaveLength(0);
    expect((await attemptsOf([failed[0]!.id])).map((attempt) => attempt.trigger).sort()).toEqual(['manual', 'scheduled']);
  });
});

describe('delivery error: a deadlock while recording failed attempts', () => {
  it('records them on a later try instead of leaving them sending until the lease ends', async () => {
    const failing = await receiver();
    failing.respond(() => ({ status: 500, body: 'down' }));
    const { id } = await endpoint(`${failing.url}/hook`);
    await emit();
    // The first try marks the endpoint failing (after recording the attempt, in the same
    // transaction) and is chosen as a deadlock's victim, as when an endpoint update or disable
    // takes the rows in the other order. The sequence counts the tries; it is not rolled back.
    await t.db.execute(sql`create sequence test_record_tries`);
    await t.db.execute(sql`create function test_deadlock_once() returns trigger language plpgsql as $$
      begin
        if nextval('test_record_tries') = 1 then
          raise exception 'deadlock detected (injected)' using errcode = '40P01';
        end if;
        return new;
      end $$`);
    await t.db.execute(sql`create trigger test_deadlock_once before update on webhook_endpoints for each row
      when (old.failing_since is null and new.failing_since is not null) execute function test_deadlock_once()`);
    try {
      await t.modules.notifications.dispatcher.runOnce();
    } finally {
      await t.db.execute(sql`drop trigger test_deadlock_once on webhook_endpoints`);
      await t.db.execute(sql`drop function test_deadlock_once()`);
    }
    const [tries] = await queryRows<{ last_value: string | number }>(t.db, sql`select last_value from test_record_tries`);
    await t.db.execute(sql`drop sequence test_record_tries`);
    expect(Number(tries!.last_value)).toBe(2);

    expect(failing.received).toHaveLength(1);
    const [row] = await deliveriesOf([id]);
    expect(row).toMatchObject({ status: 'pending', attemptCount: 1, lastStatusCode: 500 });
    expect(await attemptsOf([row!.id])).toHaveLength(1);
    const [endpointRow] = await t.db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id));
    expect(endpointRow!.failingSince).not.toBeNull();
  });
});

describe('delivery security: an interrupted send whose lease passed to another worker', () => {
  it('is not given back: the other worker holds it, and records its own attempt', async () => {
    const target = await receiver();
    const { id } = await endpoint(`${target.url}/hook`);
    await emit();
    const otherLease = new Date(t.clock.now().getTime() + 600_000);
    // The send outlives its lease (a stalled worker), another worker claims the delivery, then
    // this worker's drain deadline cuts the send short.
    const sender: HttpSender = {
      async send(_url, headers) {
        await t.db.update(webhookDeliveries).set({ leaseUntil: otherLease }).where(eq(webhookDeliveries.eventId, headers['webhook-id']!));
        const result: SendResult = {
          statusCode: null,
          durationMs: 1,
          responseExcerpt: null,
          errorKind: 'interrupted',
          errorMessage: 'the worker shut down before the endpoint answered',
          retryAfterSeconds: null,
        };
        return result;
      },
      close: async () => undefined,
    };
    const outcomes: string[] = [];
    const d = dispatcherWith(sender, {
      onAttempt: (report) => outcomes.push(report.outcome),
    });
    await d.runOnce();

    const [row] = await deliveriesOf([id]);
    expect(row).toMatchObject({ status: 'sending', leaseUntil: otherLease, attemptCount: 0, lastError: null });
    expect(await attemptsOf([row!.id])).toEqual([]);
    expect(outcomes).toEqual(['superseded']);
  });
});
