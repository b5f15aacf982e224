import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMaintenance } from '../../src/app.ts';
import { kycVerifications } from '../../src/identity/identity.tables.ts';
import { outboxEvents } from '../../src/platform/platform.tables.ts';
import { johnSmith } from '../support/fixtures.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

const REVIEW_SSN = '112220002'; // the sandbox leaves it in needs_review: open until a reviewer decides
const verificationsOf = (userId: string) => t.db.select().from(kycVerifications).where(eq(kycVerifications.userId, userId));

describe('kyc integrity: a refused request changes nothing', () => {
  it('a second verification while the first is open answers 409 and leaves the stored PII as the first sent it', async () => {
    const user = await t.signIn('kyc-refused@example.com');
    const first = await t.post('/identity/kyc-verifications', { ...johnSmith, ssn: REVIEW_SSN }, user.auth);
    expect(first.status, first.text).toBe(201);
    expect(first.body.data.status).toBe('needs_review');

    const second = await t.post(
      '/identity/kyc-verifications',
      { ...johnSmith, firstName: 'MALLORY', lastName: 'EVE', ssn: '999887777', address: '1 ELSEWHERE RD' },
      user.auth,
    );
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe('CONFLICT');

    const pii = await t.get(`/identity/user-pii/${user.userId}`, user.auth);
    expect(pii.body.data).toMatchObject({ first_name: 'JOHN', last_name: 'SMITH', address: johnSmith.address, ssn: '*****0002' });
    expect(await verificationsOf(user.userId)).toHaveLength(1);
  });

  it('an invalid merged record (a partial date of birth) answers 400 and stores no PII and no verification', async () => {
    const user = await t.signIn('kyc-invalid@example.com');
    const { dobDay: _dropped, ...partial } = johnSmith;
    const refused = await t.post('/identity/kyc-verifications', partial, user.auth);
    expect(refused.status).toBe(400);
    expect((await t.get(`/identity/user-pii/${user.userId}`, user.auth)).status).toBe(404);
    expect(await verificationsOf(user.userId)).toHaveLength(0);
  });
});

describe('kyc integrity: one open verification per user under concurrency', () => {
  it('twenty submissions at once: one is accepted, the others get 409, and the PII is the accepted one', async () => {
    const user = await t.signIn('kyc-race@example.com');
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        t.post('/identity/kyc-verifications', { ...johnSmith, ssn: REVIEW_SSN, address: `${i + 1} RACE ST` }, user.auth),
      ),
    );
    const accepted = responses.filter((response) => response.status === 201);
    expect(accepted).toHaveLength(1);
    expect(new Set(responses.filter((response) => response.status !== 201).map((response) => response.status))).toEqual(new Set([409]));
    expect(await verificationsOf(user.userId)).toHaveLength(1);
    const winner = responses.indexOf(accepted[0]!);
    const pii = await t.get(`/identity/user-pii/${user.userId}`, user.auth);
    expect(pii.body.data.address).toBe(`${winner + 1} RACE ST`);
  });

  it('twenty concurrent PII patches of different fields all land (no lost update)', async () => {
    const user = await t.signIn('pii-race@example.com');
    expect((await t.post('/identity/user-pii', { firstName: 'A', lastName: 'B' }, user.auth)).status).toBe(201);
    const fields = ['address', 'city', 'idNumber', 'telephone', 'zip'] as const;
    const value = (field: (typeof fields)[number], round: number) =>
      ({ address: `${round} MAIN ST`, city: `CITY${round}`, idNumber: `ID${round}`, telephone: `404555000${round}`, zip: `3031${round}` })[
        field
      ];
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        t.patch(`/identity/user-pii/${user.userId}`, { [fields[i % fields.length]!]: value(fields[i % fields.length]!, i % 4) }, user.auth),
      ),
    );
    expect(responses.every((response) => response.status === 200)).toBe(true);
    const stored = (await t.get(`/identity/user-pii/${user.userId}`, user.auth)).body.data;
    expect(stored.address).toMatch(/^\d MAIN ST$/);
    expect(stored.city).toMatch(/^CITY\d$/);
    expect(stored.telephone).toMatch(/^404555000\d$/);
    expect(stored.zip).toMatch(/^3031\d$/);
    expect(stored.id_number).toMatch(/ID\d$/);
  });
});

describe('kyc integrity: interrupted work resumes', () => {
  it('a verification left pending by a request that died is failed once its lease is over, and the user can start again', async () => {
    const user = await t.signIn('kyc-interrupted@example.com');
    const [stuck] = await t.db
      .insert(kycVerifications)
      .values({
        orgId: t.org.id,
        userId: user.userId,
        status: 'pending',
        identityCheck: 'pending',
        documentCheck: 'not_attempted',
        provider: 'sandbox',
        submitLeaseUntil: sql`now() + interval '1 hour'`,
        expiresAt: sql`now() + interval '72 hours'`,
      })
      .returning();
    // Still within the submitting request's lease: that request may yet finish.
    expect((await t.post('/identity/kyc-verifications', johnSmith, user.auth)).status).toBe(409);

    await t.db.execute(sql`update kyc_verifications set submit_lease_until = now() - interval '1 second' where id = ${stuck!.id}`);
    const retry = await t.post('/identity/kyc-verifications', johnSmith, user.auth);
    expect(retry.status, retry.text).toBe(201);
    expect(retry.body.data.status).toBe('approved');
    const old = await t.get(`/identity/kyc-verifications/${stuck!.id}`, user.auth);
    expect(old.body.data.status).toBe('error');
  });

  it('the periodic sweep closes stale verifications nobody reads, publishing one webhook event per transition', async () => {
    const user = await t.signIn('kyc-swept@example.com');
    const stale = {
      orgId: t.org.id,
      userId: user.userId,
      identityCheck: 'pending' as const,
      documentCheck: 'not_attempted' as const,
      provider: 'sandbox',
    };
    const [interrupted] = await t.db
      .insert(kycVerifications)
      .values({
        ...stale,
        status: 'pending',
        submitLeaseUntil: sql`now() - interval '1 second'`,
        expiresAt: sql`now() + interval '72 hours'`,
      })
      .returning();
    const other = await t.signIn('kyc-swept-2@example.com');
    const [unfinished] = await t.db
      .insert(kycVerifications)
      .values({
        ...stale,
        userId: other.userId,
        status: 'action_required',
        providerReference: 'ref-swept',
        expiresAt: sql`now() - interval '1 second'`,
      })
      .returning();
    const eventsFor = async (id: string) =>
      (await t.db.select().from(outboxEvents))
        .filter((event) => (event.data as { verification_id?: string }).verification_id === id)
        .map((event) => event.type);

    const stop = startMaintenance(t.modules, t.config, 50);
    try {
      for (let i = 0; i < 200 && (await eventsFor(unfinished!.id)).length === 0; i++)
        await new Promise((resolve) => setTimeout(resolve, 50));
      await new Promise((resolve) => setTimeout(resolve, 300)); // more ticks: nothing is closed twice
    } finally {
      await stop();
    }
    expect(await eventsFor(interrupted!.id)).toEqual(['kyc.verification.error']);
    expect(await eventsFor(unfinished!.id)).toEqual(['kyc.verification.expired']);
    // A read afterwards sees the closed status and publishes nothing more.
    expect((await t.get(`/identity/kyc-verifications/${unfinished!.id}`, other.auth)).body.data.status).toBe('expired');
    expect(await eventsFor(unfinished!.id)).toEqual(['kyc.verification.expired']);
    const jobs = await t.modules.metrics.getSingleMetricAsString('tranche_job_runs_total');
    expect(jobs).toMatch(/tranche_job_runs_total\{job="kyc_sweep",result="ok"\} [1-9]/);
  });

  it('a read that closes a stale verification publishes its transition in the same transaction', async () => {
    const user = await t.signIn('kyc-read-swept@example.com');
    const [row] = await t.db
      .insert(kycVerifications)
      .values({
        orgId: t.org.id,
        userId: user.userId,
        status: 'action_required',
        identityCheck: 'pending',
        documentCheck: 'not_attempted',
        provider: 'sandbox',
        providerReference: 'ref-read-swept',
        expiresAt: sql`now() - interval '1 second'`,
      })
      .returning();
    expect((await t.get('/identity/kyc', user.auth)).body.data.status).toBe('expired');
    const events = (await t.db.select().from(outboxEvents)).filter(
      (event) => (event.data as { verification_id?: string }).verification_id === row!.id,
    );
    expect(events.map((event) => [event.type, (event.data as { status: string }).status])).toEqual([
      ['kyc.verification.expired', 'expired'],
    ]);
  });
});
