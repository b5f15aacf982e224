import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/platform/db/database.ts';
import { johnSmith } from '../support/fixtures.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

// Idempotency-Key replays must never run a write twice, even when many arrive at once.
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ inProgressLeaseSeconds: 2, kycSandboxSubmitDelayMs: 3_000 });
}, 180_000);
afterAll(async () => {
  await t?.close();
});

const verifications = async (userId: string) =>
  queryRows<{ id: string; status: string }>(t.db, sql`select id, status from kyc_verifications where user_id = ${userId}`);

describe('KYC submission with one Idempotency-Key', () => {
  it('10 identical submissions at once, the provider slower than the lease: one verification, every answer 201 or 409, one replayed id', async () => {
    const me = await t.signIn('idem-race@example.com');
    const headers = { ...me.auth, 'idempotency-key': 'race-kyc-1' };
    const first = await Promise.all(Array.from({ length: 10 }, () => t.post('/identity/kyc-verifications', johnSmith, headers)));
    expect(
      first.every((r) => r.status === 201 || r.status === 409),
      first.map((r) => r.text).join('\n'),
    ).toBe(true);
    // Retries while the key is held (lease renewed by the heartbeat) wait; afterwards they replay.
    for (let i = 0; i < 8; i++) {
      const again = await Promise.all(Array.from({ length: 5 }, () => t.post('/identity/kyc-verifications', johnSmith, headers)));
      if (again.every((r) => r.status === 201)) break;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    const replays = await Promise.all(Array.from({ length: 5 }, () => t.post('/identity/kyc-verifications', johnSmith, headers)));
    expect(replays.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
    expect(new Set(replays.map((r) => r.body.data.verification_id)).size).toBe(1);
    const rows = await verifications(me.userId);
    expect(rows, JSON.stringify(rows)).toHaveLength(1);
    expect(rows[0]!.status).not.toBe('error');
  }, 60_000);
});
