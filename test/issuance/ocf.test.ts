import fs from 'node:fs';
import path from 'node:path';
import { and, eq } from 'drizzle-orm';
import { strFromU8, unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OCF_SCHEMA_DIR, ocfValidator } from '../../src/issuance/ocf/ocf-validator.ts';
import { auditEntries } from '../../src/platform/platform.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { payCheckout, seedInvestor, seedOffering, subscriptionBody } from '../support/issuance.ts';

const validator = ocfValidator();
const SAMPLES = path.resolve(OCF_SCHEMA_DIR, '../samples');
/** Object types upstream's TransactionsFile schema leaves out of its oneOf although its sample uses them (vendor/ocf/README.md). */
const UPSTREAM_UNLISTED = new Set([
  'TX_ISSUER_AUTHORIZED_SHARES_ADJUSTMENT',
  'TX_EQUITY_COMPENSATION_REPRICING',
  'CE_STAKEHOLDER_RELATIONSHIP',
  'CE_STAKEHOLDER_STATUS',
]);

let t: TestApp;
let admin: Record<string, string>;
beforeAll(async () => {
  t = await startTestApp();
  admin = (await t.signIn('admin@example.com')).auth;
});
afterAll(() => t.close());

/** Shares issued to a new investor: subscribed, signed, paid, approved. Returns the share id. */
async function issued(email: string, offeringId: string, securityId: string, units: number) {
  const investor = await seedInvestor(t, email);
  const created = await t.post(`/issuance/offerings/${offeringId}/subscriptions`, subscriptionBody(securityId, units), investor.auth);
  expect(created.status, created.text).toBe(201);
  const id = created.body.data.id as string;
  await t.post(`/issuance/subscriptions/${id}/sign-agreement`, { signerName: 'John Smith', consent: true }, investor.auth);
  const checkout = await t.post(`/issuance/subscriptions/${id}/create-checkout-session`, undefined, investor.auth);
  await payCheckout(t, checkout.body.data.checkout_url);
  expect((await t.post(`/admin/subscriptions/${id}/approve`, {}, admin)).status).toBe(200);
  const shares = await t.get('/issuance/shares', investor.auth);
  return { shareId: shares.body.data.items[0].id as string, userId: investor.userId, subscriptionId: id };
}

async function exportZip(
  issuerId: string,
  query = '?formation_date=2019-05-01&country_of_formation=US&country_subdivision_of_formation=DE',
) {
  const response = await fetch(`${t.url}/admin/issuers/${issuerId}/ocf${query}`, { headers: admin });
  expect(response.status, response.status === 200 ? '' : await response.clone().text()).toBe(200);
  expect(response.headers.get('content-type')).toBe('application/zip');
  const files = unzipSync(new Uint8Array(await response.arrayBuffer()));
  return Object.fromEntries(Object.entries(files).map(([name, bytes]) => [name, JSON.parse(strFromU8(bytes)) as Record<string, any>]));
}

describe('ocf happy', () => {
  it('the validator accepts the OCF samples (items upstream does not list in TransactionsFile against their own schemas)', () => {
    for (const name of fs.readdirSync(SAMPLES)) {
      const file = JSON.parse(fs.readFileSync(path.join(SAMPLES, name), 'utf8')) as {
        file_type: string;
        items?: { object_type: string }[];
      };
      if (name !== 'Transactions.ocf.json') {
        expect(validator.validate(file), name).toEqual([]);
        continue;
      }
      const listed = file.items!.filter((item) => !UPSTREAM_UNLISTED.has(item.object_type));
      expect(validator.validate({ ...file, items: listed })).toEqual([]);
      for (const item of file.items!.filter((item) => UPSTREAM_UNLISTED.has(item.object_type)))
        expect(validator.validateObject(item), item.object_type).toEqual([]);
    }
    // And it is no rubber stamp.
    expect(validator.validate({ file_type: 'OCF_STAKEHOLDERS_FILE', items: [{ object_type: 'STAKEHOLDER', id: 'x' }] })).not.toEqual([]);
  });

  it('a ledger with issuances, a Rule 144 restriction, a cancellation and a re-issuance exports as OCF files that validate', async () => {
    const { offeringId, securityId, issuerId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506c', pricePerUnit: '12.50' });
    const first = await issued('ocf-one@example.com', offeringId, securityId, 40);
    const second = await issued('ocf-two@example.com', offeringId, securityId, 20);
    const third = await issued('ocf-three@example.com', offeringId, securityId, 10);

    const cancelled = await t.post(`/admin/shares/${second.shareId}/cancel`, { reason: 'Subscription funds returned' }, admin);
    expect(cancelled.status, cancelled.text).toBe(200);
    expect(cancelled.body.data).toMatchObject({ cancelled: { id: second.shareId, status: 'cancelled' }, reissued: null });
    const corrected = await t.post(
      `/admin/shares/${third.shareId}/cancel`,
      { reason: 'Units entered wrongly', reissue: { units: 8 } },
      admin,
    );
    expect(corrected.status, corrected.text).toBe(200);
    const reissuedId = corrected.body.data.reissued.id as string;
    expect(corrected.body.data.reissued).toMatchObject({
      units: 8,
      total_cost_basis: '100.00',
      replaces_share_id: third.shareId,
      status: 'active',
    });

    const files = await exportZip(issuerId);
    expect(Object.keys(files).sort()).toEqual([
      'Manifest.ocf.json',
      'Stakeholders.ocf.json',
      'StockClasses.ocf.json',
      'StockLegends.ocf.json',
      'Transactions.ocf.json',
    ]);
    for (const [name, file] of Object.entries(files)) expect(validator.validate(file), name).toEqual([]);

    expect(files['Manifest.ocf.json']!.issuer).toMatchObject({
      id: issuerId,
      legal_name: 'Acme Robotics, Inc.',
      formation_date: '2019-05-01',
      country_of_formation: 'US',
    });
    expect(files['StockClasses.ocf.json']!.items).toEqual([
      expect.objectContaining({
        id: securityId,
        class_type: 'PREFERRED',
        initial_shares_authorized: '10000',
        price_per_share: { amount: '12.50', currency: 'USD' },
      }),
    ]);
    expect(files['StockLegends.ocf.json']!.items).toEqual([
      expect.objectContaining({ id: 'legend-rule-144', name: 'Rule 144 restricted securities' }),
    ]);
    expect(files['Stakeholders.ocf.json']!.items.map((item: { id: string }) => item.id).sort()).toEqual(
      [first.userId, second.userId, third.userId].sort(),
    );
    expect(files['Stakeholders.ocf.json']!.items[0].name.legal_name).toBe('JOHN SMITH');

    const transactions = files['Transactions.ocf.json']!.items as Record<string, any>[];
    const issuances = transactions.filter((tx) => tx.object_type === 'TX_STOCK_ISSUANCE');
    expect(issuances.map((tx) => [tx.security_id, tx.quantity])).toEqual(
      expect.arrayContaining([
        [first.shareId, '40'],
        [second.shareId, '20'],
        [third.shareId, '10'],
        [reissuedId, '8'],
      ]),
    );
    expect(issuances).toHaveLength(4);
    for (const issuance of issuances) {
      expect(issuance.stock_legend_ids).toEqual(['legend-rule-144']);
      expect(issuance.security_law_exemptions).toEqual([{ description: 'Regulation D, Rule 506(c)', jurisdiction: 'US' }]);
    }
    expect(transactions.filter((tx) => tx.object_type === 'TX_STOCK_CANCELLATION')).toEqual([
      expect.objectContaining({ security_id: second.shareId, quantity: '20', reason_text: 'Subscription funds returned' }),
    ]);
    expect(transactions.filter((tx) => tx.object_type === 'TX_STOCK_REISSUANCE')).toEqual([
      expect.objectContaining({ security_id: third.shareId, resulting_security_ids: [reissuedId], reason_text: 'Units entered wrongly' }),
    ]);

    // Each correction is in the audit log, in the subscription's timeline, without the reason in clear.
    const entries = await t.db
      .select()
      .from(auditEntries)
      .where(and(eq(auditEntries.subjectType, 'share')))
      .orderBy(auditEntries.occurredAt, auditEntries.seq);
    expect(entries.filter((row) => row.subjectId === second.shareId).map((row) => row.action)).toEqual(['share.issued', 'share.cancelled']);
    expect(entries.filter((row) => row.subjectId === reissuedId).map((row) => row.action)).toEqual(['share.reissued']);
    expect(JSON.stringify(entries)).not.toContain('entered wrongly');
    const timeline = await t.get(`/admin/audit/subjects/subscription/${third.subscriptionId}`, admin);
    expect(timeline.body.data.items.map((item: { action: string }) => item.action).slice(-3)).toEqual([
      'subscription.completed',
      'share.cancelled',
      'share.reissued',
    ]);
  });

  it('an issuer created with its formation date and country needs no query', async () => {
    const issuer = await t.post(
      '/admin/issuers',
      { legalName: 'Formed, Inc.', formationDate: '2020-02-02', countryOfFormation: 'US', countrySubdivisionOfFormation: 'DE' },
      admin,
    );
    expect(issuer.status, issuer.text).toBe(201);
    expect(issuer.body.data).toMatchObject({ formation_date: '2020-02-02', country_of_formation: 'US' });
    const files = await exportZip(issuer.body.data.id, '');
    expect(files['Transactions.ocf.json']!.items).toEqual([]);
    for (const [name, file] of Object.entries(files)) expect(validator.validate(file), name).toEqual([]);
  });
});

describe('ocf error', () => {
  it('corrections refuse what they cannot do and change nothing', async () => {
    const { offeringId, securityId } = await seedOffering(t, admin, { unitsAuthorized: 30 });
    const { shareId } = await issued('ocf-errors@example.com', offeringId, securityId, 20);
    expect((await t.post(`/admin/shares/${shareId}/cancel`, {}, admin)).status).toBe(400);
    expect((await t.post(`/admin/shares/${shareId}/cancel`, { reason: 'x', reissue: { units: 0 } }, admin)).status).toBe(400);
    const tooMany = await t.post(`/admin/shares/${shareId}/cancel`, { reason: 'x', reissue: { units: 31 } }, admin);
    expect(tooMany.status).toBe(409);
    expect(tooMany.body.error.code).toBe('OFFERING_FULL');
    expect((await t.db.select().from(auditEntries).where(eq(auditEntries.subjectId, shareId))).map((row) => row.action)).toEqual([
      'share.issued',
    ]);
    expect((await t.post(`/admin/shares/00000000-0000-4000-8000-000000000000/cancel`, { reason: 'x' }, admin)).status).toBe(404);
    expect((await t.post(`/admin/shares/${shareId}/cancel`, { reason: 'refunded' }, admin)).status).toBe(200);
    const again = await t.post(`/admin/shares/${shareId}/cancel`, { reason: 'again' }, admin);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('INVALID_STATE');
  });

  it('an export without formation data is 409 naming the field; another org or an unknown issuer is 404', async () => {
    const { issuerId } = await seedOffering(t, admin);
    const missing = await t.get(`/admin/issuers/${issuerId}/ocf`, admin);
    expect(missing.status).toBe(409);
    expect(missing.body.error).toMatchObject({ code: 'INVALID_STATE', field: 'formation_date' });
    expect((await t.get(`/admin/issuers/${issuerId}/ocf?country_of_formation=usa`, admin)).status).toBe(400);
    const other = await t.createOrg({ name: 'Elsewhere', adminEmails: ['elsewhere-admin@example.com'] });
    const otherAdmin = (await t.signIn('elsewhere-admin@example.com', other)).auth;
    expect((await t.get(`/admin/issuers/${issuerId}/ocf?formation_date=2019-01-01&country_of_formation=US`, otherAdmin)).status).toBe(404);
    expect(
      (await t.get(`/admin/issuers/00000000-0000-4000-8000-000000000000/ocf?formation_date=2019-01-01&country_of_formation=US`, admin))
        .status,
    ).toBe(404);
  });
});
