import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/platform/db/database.ts';
import { johnSmith } from '../support/fixtures.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

describe('Idempotency-Key', () => {
  it('replays the first response for the same key and body, without running the write again', async () => {
    const me = await t.signIn('idem@example.com');
    const headers = { ...me.auth, 'idempotency-key': 'create-pii-1' };
    const first = await t.post('/identity/user-pii', { firstName: 'Ida', lastName: 'Em' }, headers);
    const second = await t.post('/identity/user-pii', { firstName: 'Ida', lastName: 'Em' }, headers);
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(second.body).toEqual(first.body);
    const withoutKey = await t.post('/identity/user-pii', { firstName: 'Ida', lastName: 'Em' }, me.auth);
    expect(withoutKey.status).toBe(409);
  });

  it('holds for back-office writes too: an org admin and a platform admin key each replay, in scopes of their own', async () => {
    const orgAdmin = await t.signIn('admin@example.com');
    const platform = { 'x-admin-key': (await t.modules.identity.orgs.createAdminKey('idem')).key };
    for (const [caller, body] of [
      [orgAdmin.auth, { legalName: 'Idem Issuer, Inc.' }],
      [platform, { legalName: 'Idem Issuer, Inc.', orgId: t.org.id }],
    ] as const) {
      const headers = { ...caller, 'idempotency-key': 'create-issuer-1' };
      const first = await t.post('/admin/issuers', body, headers);
      const second = await t.post('/admin/issuers', body, headers);
      expect(first.status).toBe(201);
      expect(second.headers.get('idempotent-replayed')).toBe('true');
      expect(second.body).toEqual(first.body);
    }
  });

  it('refuses the same key with a different body (422)', async () => {
    const me = await t.signIn('idem-mismatch@example.com');
    const headers = { ...me.auth, 'idempotency-key': 'k-1' };
    await t.patch(`/identity/users/${me.userId}`, { onboardingCompleted: true }, headers);
    const other = await t.patch(`/identity/users/${me.userId}`, { onboardingCompleted: false }, headers);
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
  });

  it('replays 4xx answers of the handler too, but keys are scoped per caller', async () => {
    const a = await t.signIn('idem-a@example.com');
    const b = await t.signIn('idem-b@example.com');
    const missing = '00000000-0000-4000-8000-000000000000';
    const failing = await t.post(
      '/identity/user-pii',
      { userId: missing, firstName: 'A', lastName: 'A' },
      { ...a.auth, 'idempotency-key': 'shared' },
    );
    expect(failing.status).toBe(404);
    const replay = await t.post(
      '/identity/user-pii',
      { userId: missing, firstName: 'A', lastName: 'A' },
      { ...a.auth, 'idempotency-key': 'shared' },
    );
    expect(replay.status).toBe(404);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    const otherCaller = await t.post('/identity/user-pii', { firstName: 'B', lastName: 'B' }, { ...b.auth, 'idempotency-key': 'shared' });
    expect(otherCaller.status).toBe(201);
    expect(otherCaller.headers.get('idempotent-replayed')).toBeNull();
  });

  it('lets exactly one of two concurrent identical requests run', async () => {
    const me = await t.signIn('idem-race@example.com');
    const headers = { ...me.auth, 'idempotency-key': 'race' };
    const body = { firstName: 'Ra', lastName: 'Ce' };
    const results = await Promise.all([t.post('/identity/user-pii', body, headers), t.post('/identity/user-pii', body, headers)]);
    const statuses = results.map((r) => r.status).sort();
    expect([
      [201, 201],
      [201, 409],
    ]).toContainEqual(statuses);
    expect(results.filter((r) => r.status === 201 && r.headers.get('idempotent-replayed') === null)).toHaveLength(1);
  });

  it('validates the key', async () => {
    const me = await t.signIn('idem-bad@example.com');
    const response = await t.patch(
      `/identity/users/${me.userId}`,
      { onboardingCompleted: true },
      { ...me.auth, 'idempotency-key': 'x'.repeat(300) },
    );
    expect(response.status).toBe(400);
    expect(response.body.error.field).toBe('Idempotency-Key');
  });

  it('a key left in progress by a request that died lets the retry run once its lease is over, and only the same request', async () => {
    const me = await t.signIn('idem-crash@example.com');
    const headers = { ...me.auth, 'idempotency-key': 'crashed' };
    const path = `/identity/users/${me.userId}`;
    expect((await t.patch(path, { onboardingCompleted: true }, headers)).status).toBe(200);
    // As if the process had died mid-request: the record is still in progress, held by a dead owner.
    const crash = (lease: string) =>
      t.db.execute(
        sql`update idempotency_keys set state = 'in_progress', response_status = null, response_ciphertext = null,
            owner = gen_random_uuid(), lease_until = now() + ${lease}::interval where key = 'crashed'`,
      );
    await crash('1 hour');
    const during = await t.patch(path, { onboardingCompleted: true }, headers);
    expect(during.status).toBe(409);
    expect(during.body.error.code).toBe('IDEMPOTENCY_REQUEST_IN_PROGRESS');

    await crash('-1 second');
    expect((await t.patch(path, { onboardingCompleted: false }, headers)).status).toBe(422);
    const retry = await t.patch(path, { onboardingCompleted: true }, headers);
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
    const replay = await t.patch(path, { onboardingCompleted: true }, headers);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.body).toEqual(retry.body);
  });

  it('a request that dies after its writes committed is never run twice: the retry is refused, and nothing is written again', async () => {
    const headers = { 'x-api-key': t.apiKey, 'idempotency-key': 'dies-after-commit' };
    const body = { url: 'http://127.0.0.1:9/after-commit', eventTypes: ['*'] };
    const count = async () =>
      (await queryRows<{ n: number }>(t.db, sql`select count(*)::int as n from webhook_endpoints where url = ${body.url}`))[0]!.n;
    // As if the process died between its commit and storing the answer: storing the answer fails.
    await t.db.execute(sql`create or replace function test_die_before_answer() returns trigger language plpgsql as $$
      begin
        if new.key = 'dies-after-commit' and new.state = 'completed' then raise exception 'process died'; end if;
        return new;
      end $$`);
    await t.db.execute(
      sql`create trigger test_die_before_answer before update on idempotency_keys for each row execute function test_die_before_answer()`,
    );
    try {
      await t.post('/notifications/webhooks', body, headers);
    } finally {
      await t.db.execute(sql`drop trigger test_die_before_answer on idempotency_keys`);
    }
    expect(await count()).toBe(1);
    const [record] = await queryRows<{ state: string }>(t.db, sql`select state from idempotency_keys where key = 'dies-after-commit'`);
    expect(record?.state).toBe('committed');

    // The dead process's lease runs out; the retry must not create a second endpoint.
    await t.db.execute(
      sql`update idempotency_keys set owner = gen_random_uuid(), lease_until = now() - interval '1 second' where key = 'dies-after-commit'`,
    );
    const retry = await t.post('/notifications/webhooks', body, headers);
    expect(retry.status).toBe(409);
    expect(retry.body.error.code).toBe('IDEMPOTENCY_REQUEST_INTERRUPTED');
    expect(await count()).toBe(1);
  });

  it('a retry that takes over the key of a KYC submission whose process died runs it again, whatever the gap between the two leases', async () => {
    // The vendor hangs for 3 s: the first request has committed its submission and waits on it.
    const app = await startTestApp({ inProgressLeaseSeconds: 30, kycSandboxSubmitDelayMs: 3_000 });
    try {
      const me = await app.signIn('idem-takeover@example.com');
      const headers = { ...me.auth, 'idempotency-key': 'takeover-kyc' };
      const first = app.post('/identity/kyc-verifications', johnSmith, headers);
      const leases = async () =>
        (
          await queryRows<{ key_lease: Date; kyc_lease: Date | null; gap_ms: number }>(
            app.db,
            sql`select k.lease_until as key_lease, v.submit_lease_until as kyc_lease,
                       extract(epoch from (v.submit_lease_until - k.lease_until)) * 1000 as gap_ms
                from idempotency_keys k, kyc_verifications v
                where k.key = 'takeover-kyc' and k.state = 'committed' and v.user_id = ${me.userId} and v.status = 'pending'`,
          )
        )[0];
      for (let i = 0; i < 600 && !(await leases()); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      // The submission's lease ends no later than the key's, which the commit renewed.
      expect(Number((await leases())!.gap_ms)).toBeLessThanOrEqual(0);

      // The process dies now: the key's lease ends a moment ago and the submission's keeps its distance from it.
      await app.db.execute(sql`
        with shift as (select lease_until - now() + interval '1 millisecond' as by from idempotency_keys where key = 'takeover-kyc')
        update kyc_verifications set submit_lease_until = submit_lease_until - (select by from shift)
        where user_id = ${me.userId} and status = 'pending'`);
      await app.db.execute(sql`update idempotency_keys set lease_until = now() - interval '1 millisecond' where key = 'takeover-kyc'`);
      const retry = await app.post('/identity/kyc-verifications', johnSmith, headers);
      expect(retry.status, retry.text).toBe(201);
      expect(retry.headers.get('idempotent-replayed')).toBeNull();
      // The first request, had it lived, could store nothing: its key is the retry's now.
      const late = await first;
      expect(late.status).toBe(409);
      expect(late.body.error.message).toMatch(/lost its Idempotency-Key/);
      const replay = await app.post('/identity/kyc-verifications', johnSmith, headers);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.body.data.verification_id).toBe(retry.body.data.verification_id);
    } finally {
      await app.close();
    }
  }, 60_000);

  it('a long request keeps its key: the lease is renewed while it runs, so a retry waits instead of running it twice', async () => {
    const slow = await startTestApp({ inProgressLeaseSeconds: 3, kycSandboxSubmitDelayMs: 8_000 });
    try {
      const me = await slow.signIn('idem-slow@example.com');
      const headers = { ...me.auth, 'idempotency-key': 'slow-kyc' };
      const first = slow.post('/identity/kyc-verifications', johnSmith, headers);
      // Retries start once the first request holds the key (else a retry could take it first).
      const held = async () =>
        (await queryRows<{ n: number }>(slow.db, sql`select count(*)::int as n from idempotency_keys where key = 'slow-kyc'`))[0]!.n;
      for (let i = 0; i < 600 && (await held()) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      const started = Date.now();
      let retries = 0;
      // Well past the 3 s lease, while the first request still waits on the vendor.
      while (Date.now() - started < 6_000) {
        const retry = await slow.post('/identity/kyc-verifications', johnSmith, headers);
        if (retry.status === 201) break;
        expect(retry.status).toBe(409);
        expect(retry.body.error).toMatchObject({ code: 'IDEMPOTENCY_REQUEST_IN_PROGRESS', message: expect.stringMatching(/in progress/) });
        retries++;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect(retries).toBeGreaterThan(0);
      const answered = await first;
      expect(answered.status).toBe(201);
      const replay = await slow.post('/identity/kyc-verifications', johnSmith, headers);
      expect(replay.status).toBe(201);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.body.data.verification_id).toBe(answered.body.data.verification_id);
    } finally {
      await slow.close();
    }
  }, 60_000);
});
