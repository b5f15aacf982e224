import { and, eq, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subscriptions } from '../../src/issuance/issuance.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { seedInvestor, seedOffering, subscriptionBody } from '../support/issuance.ts';

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
