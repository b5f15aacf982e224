import { and, eq, inArray, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { offerings, subscriptions } from '../../src/issuance/issuance.tables.ts';
import { stripeClient } from '../../src/issuance/payments/stripe.provider.ts';
import { fromCents } from '../../src/platform/money.ts';
import pg from 'pg';
import { startTestApp, usingPostgres, type ApiResponse, type TestApp } from '../support/harness.ts';
import { payCheckout, seedInvestor, seedOffering, storedTotals, subscriptionBody, summedTotals } from '../support/issuance.ts';

let t: TestApp;
let admin: Record<string, string>;
beforeAll(async () => {
  t = await startTestApp();
  admin = (await t.signIn('admin@example.com')).auth;
});
afterAll(() => t.close());

const COMPETITORS = 20;
const subscribe = (offeringId: string, body: unknown, auth: Record<string, string>) =>
  t.post(`/issuance/offerings/${offeringId}/subscriptions`, body, auth);

function tally(responses: { status: number; body: any }[]) {
  const accepted = responses.filter((response) => response.status === 201).length;
  const refused = responses.filter((response) => response.status !== 201);
  return { accepted, refusedCodes: [...new Set(refused.map((response) => response.body.error?.code as string))] };
}

const committed = (offeringIds: string[], userId?: string) =>
  t.db
    .select()
    .from(subscriptions)
    .where(and(inArray(subscriptions.offeringId, offeringIds), userId ? eq(subscriptions.userId, userId) : undefined));

describe('subscription limits under concurrency', () => {
  it('Reg CF: twenty $2,000 subscriptions at once against a $2,500 12-month limit, over two offerings: one is accepted', async () => {
    const investor = await seedInvestor(t, 'cf-race@example.com', { accreditation: 'none' });
    const first = await seedOffering(t, admin, { exemptionType: 'reg_cf', pricePerUnit: '100.00' });
    const second = await seedOffering(t, admin, { exemptionType: 'reg_cf', pricePerUnit: '100.00' });
    const body = (securityId: string) =>
      subscriptionBody(securityId, 20, { accreditationStatus: 'non_accredited', annualIncome: '30000.00', netWorth: '20000.00' });
    const responses = await Promise.all(
      Array.from({ length: COMPETITORS }, (_, i) => {
        const target = i % 2 === 0 ? first : second;
        return subscribe(target.offeringId, body(target.securityId), investor.auth);
      }),
    );
    expect(tally(responses)).toEqual({ accepted: 1, refusedCodes: ['INVESTMENT_LIMIT_EXCEEDED'] });
    expect(await committed([first.offeringId, second.offeringId], investor.userId)).toHaveLength(1);
  });

  it('per-investor maximum: twenty $500 subscriptions at once against a $1,000 maximum: two are accepted', async () => {
    const investor = await seedInvestor(t, 'max-race@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506b', maximumInvestment: '1000.00' });
    const responses = await Promise.all(
      Array.from({ length: COMPETITORS }, () => subscribe(offeringId, subscriptionBody(securityId, 50), investor.auth)),
    );
    expect(tally(responses)).toEqual({ accepted: 2, refusedCodes: ['INVESTMENT_LIMIT_EXCEEDED'] });
    expect(await committed([offeringId], investor.userId)).toHaveLength(2);
  });

  it('offering capacity: twenty investors at once for 70 units (10 each) and for a $100,000 maximum amount never oversell', async () => {
    const investors = await Promise.all(
      Array.from({ length: COMPETITORS }, (_, i) => seedInvestor(t, `cap-race-${i}@example.com`, { accreditation: 'none' })),
    );
    const units = await seedOffering(t, admin, { exemptionType: 'reg_d_506b', unitsAuthorized: 70 });
    const amount = await seedOffering(t, admin, {
      exemptionType: 'reg_d_506b',
      pricePerUnit: '10000.00',
      minimumInvestment: '100.00',
      maximumAmount: '100000.00',
      unitsAuthorized: 1000,
    });
    const [byUnits, byAmount] = await Promise.all([
      Promise.all(investors.map((investor) => subscribe(units.offeringId, subscriptionBody(units.securityId, 10), investor.auth))),
      Promise.all(investors.map((investor) => subscribe(amount.offeringId, subscriptionBody(amount.securityId, 1), investor.auth))),
    ]);
    expect(tally(byUnits)).toEqual({ accepted: 7, refusedCodes: ['OFFERING_FULL'] });
    expect(tally(byAmount)).toEqual({ accepted: 10, refusedCodes: ['OFFERING_FULL'] });
    expect(await committed([units.offeringId])).toHaveLength(7);
    expect(await committed([amount.offeringId])).toHaveLength(10);
  });
});

// PostgreSQL only: another connection holds the class's row while a create runs (the embedded
// database is one connection, where nothing runs between the create's statements).
describe.runIf(usingPostgres())('a class changed while a subscription is created', () => {
  it("the create prices and checks the units on the class's locked row, not on the row it read before locking it", async () => {
    const investor = await seedInvestor(t, 'class-change@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, {
      exemptionType: 'reg_d_506b',
      pricePerUnit: '10.00',
      minimumInvestment: '100.00',
      unitsAuthorized: 100,
    });
    const other = new pg.Client({ connectionString: t.database.url });
    await other.connect();
    try {
      // The class changes (a higher price, fewer units authorized) in a transaction not yet committed.
      await other.query('begin');
      await other.query('update security_classes set price_per_unit_cents = 2000, units_authorized = 15 where id = $1', [securityId]);
      const created = subscribe(offeringId, subscriptionBody(securityId, 10), investor.auth);
      // The create read the class as it was (the change is not committed) and now waits for its row.
      const pid = (await other.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
      for (;;) {
        const waiting = await other.query(
          'select 1 from pg_stat_activity where datname = current_database() and $1 = any(pg_blocking_pids(pid))',
          [pid],
        );
        if (waiting.rowCount) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await other.query('commit');
      const response = await created;
      expect(response.status, response.text).toBe(201);
      expect(response.body.data).toMatchObject({ units_subscribed: 10, price_per_unit: '20.00', amount: '200.00' });
      // The units authorized it checked are the new ones: 5 of 15 remain.
      const more = await subscribe(offeringId, subscriptionBody(securityId, 6), investor.auth);
      expect(more.body.error).toMatchObject({ code: 'OFFERING_FULL', message: expect.stringContaining('Only 5 units') });
      await expectTotalsHold(offeringId);
    } finally {
      await other.query('rollback').catch(() => undefined);
      await other.end();
    }
  });
});

describe('offering documents under concurrency', () => {
  it('twenty new versions of one document at once: all stored, numbered 1 to 20', async () => {
    const { offeringId } = await seedOffering(t, admin, { agreement: false, open: false });
    const responses = await Promise.all(
      Array.from({ length: COMPETITORS }, (_, i) =>
        t.post(
          `/admin/offerings/${offeringId}/documents`,
          { kind: 'ppm', title: `PPM ${i}`, contentType: 'text/plain', content: Buffer.from(`memorandum ${i}`).toString('base64') },
          admin,
        ),
      ),
    );
    expect(responses.map((response) => response.status)).toEqual(Array(COMPETITORS).fill(201));
    const versions = responses.map((response) => response.body.data.version as number).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: COMPETITORS }, (_, i) => i + 1));
  });
});

/** The stored totals equal the summed ones, and the API shows them: the offering's amounts and investors, each class's units available. */
async function expectTotalsHold(offeringId: string) {
  const summed = await summedTotals(t.db, offeringId);
  expect(await storedTotals(t.db, offeringId)).toEqual(summed);
  const offering = await t.get(`/issuance/offerings/${offeringId}`, { 'x-api-key': t.apiKey });
  const [row] = await t.db.select().from(offerings).where(eq(offerings.id, offeringId));
  expect(offering.body.data.amounts).toMatchObject({
    raised: fromCents(summed.raisedCents),
    remaining: fromCents(Math.max(0, row!.maximumAmountCents - summed.committedCents)),
  });
  expect(offering.body.data.investors).toEqual({
    total: summed.investors,
    accredited: summed.accreditedInvestors,
    non_accredited: summed.investors - summed.accreditedInvestors,
  });
  const securities = await t.get(`/issuance/securities?offering_id=${offeringId}`, { 'x-api-key': t.apiKey });
  for (const security of securities.body.data.items as { id: string; units_authorized: number; units_available: number }[])
    expect(security.units_available).toBe(security.units_authorized - summed.unitsHeld[security.id]!);
  return summed;
}

describe('running totals under concurrency', () => {
  it('after concurrent creates and every kind of status change over HTTP, the totals equal the sums over the subscriptions', async () => {
    const investors = await Promise.all(
      Array.from({ length: 5 }, (_, i) => seedInvestor(t, `totals-mix-${i}@example.com`, { accreditation: 'none' })),
    );
    const { offeringId, securityId: classA } = await seedOffering(t, admin, {
      exemptionType: 'reg_d_506b',
      unitsAuthorized: 120,
      minimumInvestment: '1.00',
    });
    const second = await t.post(
      `/admin/offerings/${offeringId}/securities`,
      { name: 'Class B', category: 'equity', pricePerUnit: '5.00', unitsAuthorized: 60 },
      admin,
    );
    expect(second.status, second.text).toBe(201);
    const classB = second.body.data.id as string;
    const stripe = stripeClient('sk_test_x', t.stripe.apiBase());

    type Sub = { id: string; investor: (typeof investors)[number] };
    const created: Sub[] = [];
    const create = async (investorIndex: number, securityId: string, units: number) => {
      const investor = investors[investorIndex % investors.length]!;
      const accreditationStatus = (investorIndex + units) % 2 === 0 ? 'accredited' : 'non_accredited';
      const response = await subscribe(offeringId, subscriptionBody(securityId, units, { accreditationStatus }), investor.auth);
      if (response.status === 201) created.push({ id: response.body.data.id, investor });
      return response;
    };
    const sign = (sub: Sub) =>
      t.post(`/issuance/subscriptions/${sub.id}/sign-agreement`, { signerName: 'J S', consent: true }, sub.investor.auth);
    const checkout = async (sub: Sub) => {
      const response = await t.post(`/issuance/subscriptions/${sub.id}/create-checkout-session`, undefined, sub.investor.auth);
      expect(response.status, response.text).toBe(200);
      return response.body.data as { session_id: string; checkout_url: string };
    };
    const pay = async (sub: Sub) => {
      await payCheckout(t, (await checkout(sub)).checkout_url);
      return t.get(`/issuance/subscriptions/${sub.id}`, sub.investor.auth);
    };
    const expire = async (sub: Sub) => {
      await stripe.checkout.sessions.expire((await checkout(sub)).session_id);
      return t.get(`/issuance/subscriptions/${sub.id}`, sub.investor.auth);
    };
    const cancel = (sub: Sub) => t.delete(`/issuance/subscriptions/${sub.id}`, sub.investor.auth);
    const approve = (sub: Sub) => t.post(`/admin/subscriptions/${sub.id}/approve`, {}, admin);
    const reject = (sub: Sub) => t.post(`/admin/subscriptions/${sub.id}/reject`, { reason: 'issuer declined' }, admin);
    const status = async (sub: Sub) => (await t.get(`/issuance/subscriptions/${sub.id}`, sub.investor.auth)).body.data.status as string;
    const inStatus = async (wanted: string) => {
      const statuses = await Promise.all(created.map(status));
      return created.filter((_, i) => statuses[i] === wanted);
    };
    /** Runs the actions at once; each answers 2xx or an expected refusal, never a 5xx. */
    const together = async (actions: Promise<ApiResponse>[]) => {
      for (const response of await Promise.all(actions)) {
        expect(response.status, response.text).toBeLessThan(500);
        if (response.status >= 400) expect(['OFFERING_FULL', 'INVALID_STATE'], response.text).toContain(response.body.error.code);
      }
    };

    // Creates only: class B (60 units) cannot take all forty units asked of it twice over.
    await together(
      investors.flatMap((_, i) => [create(i, classA, 10), create(i, classB, 10), create(i, classA, 10), create(i, classB, 10)]),
    );
    expect(created).toHaveLength(16);
    await expectTotalsHold(offeringId);

    // Signatures and cancellations of pending signatures, with more creates racing them for the freed units.
    const fresh = await inStatus('pending_signature');
    await together([
      ...fresh.map((sub, i) => (i % 3 === 2 ? cancel(sub) : sign(sub))),
      ...investors.map((_, i) => create(i + 1, i % 2 === 0 ? classA : classB, 5)),
    ]);
    await expectTotalsHold(offeringId);

    // Payments (funded), expired checkouts and cancellations of signed ones, signatures and creates at once.
    const signed = await inStatus('pending_payment');
    const unsigned = await inStatus('pending_signature');
    await together([
      ...signed.map((sub, i) => [pay, expire, cancel, pay][i % 4]!(sub)),
      ...unsigned.map(sign),
      ...investors.map((_, i) => create(i + 2, classA, 3)),
    ]);
    await expectTotalsHold(offeringId);

    // Approvals (shares) and rejections (refunds) of funded ones, with cancellations, payments and creates.
    const funded = await inStatus('pending_review');
    const payable = await inStatus('pending_payment');
    const cancellable = await inStatus('pending_signature');
    expect(funded.length).toBeGreaterThan(1);
    await together([
      ...funded.map((sub, i) => (i % 2 === 0 ? approve(sub) : reject(sub))),
      ...payable.map(pay),
      ...cancellable.map(cancel),
      ...investors.map((_, i) => create(i + 3, classB, 2)),
    ]);
    const totals = await expectTotalsHold(offeringId);
    const statuses = new Set(await Promise.all(created.map(status)));
    for (const reached of ['completed', 'rejected', 'cancelled']) expect(statuses).toContain(reached);
    expect(totals.raisedCents).toBeGreaterThan(0);
  }, 120_000);

  it('a refused create or a failed status change leaves them as they were', async () => {
    const [first, second, third, fourth] = await Promise.all(
      [1, 2, 3, 4].map((i) => seedInvestor(t, `totals-refused-${i}@example.com`, { accreditation: 'none' })),
    );
    const { offeringId, securityId } = await seedOffering(t, admin, {
      exemptionType: 'reg_d_506b',
      pricePerUnit: '100.00',
      minimumInvestment: '100.00',
      maximumInvestment: '1000.00',
      targetAmount: '1000.00',
      maximumAmount: '3000.00',
      unitsAuthorized: 35,
    });
    const taken = await subscribe(offeringId, subscriptionBody(securityId, 10), first!.auth);
    expect(taken.status, taken.text).toBe(201);
    const before = await storedTotals(t.db, offeringId);

    // Refused after the offering's totals and the investor's part were moved in the transaction: all rolled back.
    const overInvestor = await subscribe(offeringId, subscriptionBody(securityId, 1), first!.auth);
    expect(overInvestor.body.error.code).toBe('INVESTMENT_LIMIT_EXCEEDED');
    expect(await storedTotals(t.db, offeringId)).toEqual(before);

    // The class's units moved, then the offering's maximum amount refused it.
    expect((await subscribe(offeringId, subscriptionBody(securityId, 10), second!.auth)).status).toBe(201);
    expect((await subscribe(offeringId, subscriptionBody(securityId, 10), third!.auth)).status).toBe(201);
    const full = await storedTotals(t.db, offeringId);
    expect(full.committedCents).toBe(300_000);
    const overAmount = await subscribe(offeringId, subscriptionBody(securityId, 1), fourth!.auth);
    expect(overAmount.body.error).toMatchObject({ code: 'OFFERING_FULL', message: expect.stringContaining('maximum amount') });
    expect(await storedTotals(t.db, offeringId)).toEqual(full);

    // Too many units for the class: refused by the database's conditional update, nothing moved.
    const overUnits = await subscribe(offeringId, subscriptionBody(securityId, 6), fourth!.auth);
    expect(overUnits.body.error).toMatchObject({ code: 'OFFERING_FULL', message: expect.stringContaining('Only 5 units') });
    expect(await storedTotals(t.db, offeringId)).toEqual(full);

    // A cancellation that fails after moving the totals (its transition cannot be written) is rolled back whole.
    const victim = taken.body.data.id as string;
    await t.db.execute(sql`create or replace function test_fail_cancel() returns trigger language plpgsql as $$
      begin
        if new.to_status = 'cancelled' then raise exception 'transition log unavailable'; end if;
        return new;
      end $$`);
    await t.db.execute(
      sql`create trigger test_fail_cancel before insert on subscription_transitions for each row execute function test_fail_cancel()`,
    );
    try {
      expect((await t.delete(`/issuance/subscriptions/${victim}`, first!.auth)).status).toBe(500);
    } finally {
      await t.db.execute(sql`drop trigger test_fail_cancel on subscription_transitions`);
    }
    expect((await t.get(`/issuance/subscriptions/${victim}`, first!.auth)).body.data.status).toBe('pending_signature');
    expect(await storedTotals(t.db, offeringId)).toEqual(full);
    await expectTotalsHold(offeringId);

    // The same cancellation, once it can be written, moves them.
    expect((await t.delete(`/issuance/subscriptions/${victim}`, first!.auth)).status).toBe(200);
    const after = await expectTotalsHold(offeringId);
    expect(after).toMatchObject({ committedCents: 200_000, investors: 2 });
  });
});
