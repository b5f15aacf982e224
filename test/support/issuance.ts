import { eq } from 'drizzle-orm';
import { expect } from 'vitest';
import { offeringInvestors, offerings, securityClasses, subscriptions } from '../../src/issuance/issuance.tables.ts';
import { FUNDED_STATUSES, HOLDING_STATUSES } from '../../src/issuance/offerings/offerings.repo.ts';
import type { Executor } from '../../src/platform/db/database.ts';
import { johnSmith } from './fixtures.ts';
import type { TestApp } from './harness.ts';

export type OfferingSetup = {
  exemptionType?: string;
  pricePerUnit?: string;
  unitsAuthorized?: number;
  minimumInvestment?: string;
  maximumInvestment?: string;
  targetAmount?: string;
  maximumAmount?: string;
  open?: boolean;
  agreement?: boolean;
};

/** An offering made through the admin API, as the back office would: issuer, offering, class, agreement, open. */
export async function seedOffering(t: TestApp, admin: Record<string, string>, options: OfferingSetup = {}) {
  const issuer = await t.post('/admin/issuers', { legalName: 'Acme Robotics, Inc.' }, admin);
  expect(issuer.status, issuer.text).toBe(201);
  const offering = await t.post(
    '/admin/offerings',
    {
      issuerId: issuer.body.data.id,
      name: 'Acme Series A',
      exemptionType: options.exemptionType ?? 'reg_d_506c',
      targetAmount: options.targetAmount ?? '100000.00',
      maximumAmount: options.maximumAmount ?? '500000.00',
      minimumInvestment: options.minimumInvestment ?? '100.00',
      ...(options.maximumInvestment ? { maximumInvestment: options.maximumInvestment } : {}),
      deadline: '2027-12-31',
    },
    admin,
  );
  expect(offering.status, offering.text).toBe(201);
  const offeringId = offering.body.data.id as string;
  const security = await t.post(
    `/admin/offerings/${offeringId}/securities`,
    {
      name: 'Series A Preferred',
      category: 'preferred_equity',
      pricePerUnit: options.pricePerUnit ?? '10.00',
      unitsAuthorized: options.unitsAuthorized ?? 10_000,
    },
    admin,
  );
  expect(security.status, security.text).toBe(201);
  if (options.agreement !== false) {
    const agreement = await t.post(
      `/admin/offerings/${offeringId}/documents`,
      {
        kind: 'subscription_agreement',
        title: 'Subscription Agreement',
        contentType: 'text/plain',
        content: Buffer.from('I subscribe.').toString('base64'),
      },
      admin,
    );
    expect(agreement.status, agreement.text).toBe(201);
  }
  if (options.open !== false) expect((await t.post(`/admin/offerings/${offeringId}/open`, {}, admin)).status).toBe(200);
  return { offeringId, securityId: security.body.data.id as string, issuerId: issuer.body.data.id as string };
}

/** An investor signed in through token exchange, with KYC approved and, if asked, verified accreditation. */
export async function seedInvestor(
  t: TestApp,
  email: string,
  options: { kyc?: boolean; accreditation?: 'verified' | 'self_certified' | 'none' } = {},
) {
  const session = await t.signIn(email);
  if (options.kyc !== false) {
    const kyc = await t.post('/identity/kyc-verifications', johnSmith, session.auth);
    expect(kyc.body.data?.status, kyc.text).toBe('approved');
  }
  const accreditation = options.accreditation ?? 'verified';
  if (accreditation !== 'none') {
    const certified = await t.request('PUT', '/identity/accreditations', {
      body: { accreditationStatus: 'accredited', accreditationBasis: 'income' },
      headers: session.auth,
    });
    if (accreditation === 'verified') {
      const id = certified.body.data.id as string;
      const upload = await t.post(
        `/identity/accreditation-sessions/${id}/documents`,
        {
          documentType: 'income_proof',
          fileName: 'w2.pdf',
          contentType: 'application/pdf',
          content: Buffer.from('%PDF w2').toString('base64'),
        },
        session.auth,
      );
      expect(upload.status, upload.text).toBe(201);
      const adminKey = await t.modules.identity.orgs.createAdminKey();
      const approved = await t.post(`/admin/accreditations/${id}/approve`, {}, { 'x-admin-key': adminKey.key });
      expect(approved.body.data?.verified, approved.text).toBe(true);
    }
  }
  return session;
}

export const subscriptionBody = (securityClassId: string, units: number, extra: Record<string, unknown> = {}) => ({
  securityClassId,
  unitsSubscribed: units,
  paymentMethod: 'card',
  accreditationStatus: 'accredited',
  suitabilityConfirmed: true,
  riskAcknowledgmentSigned: true,
  ...extra,
});

/** The Stripe double's page for a checkout URL, reached on the test server (PUBLIC_URL is a name only). */
export const onTestServer = (t: Pick<TestApp, 'url' | 'config'>, publicLink: string) =>
  publicLink.startsWith(t.config.publicUrl) ? `${t.url}${publicLink.slice(t.config.publicUrl.length)}` : publicLink;

/**
 * Submits the Stripe double's hosted pay page, as the investor's browser would; `outcome` is one of
 * the page's buttons (pay, decline, fail_3ds, ach_succeed, ach_fail). Returns the response (a 303 to
 * the success URL when the payment went through).
 */
export async function payCheckout(t: Pick<TestApp, 'url' | 'config'>, checkoutUrl: string, outcome = 'pay', expected = [303]) {
  const response = await fetch(onTestServer(t, checkoutUrl), {
    method: 'POST',
    body: `outcome=${outcome}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    redirect: 'manual',
  });
  expect(expected, await response.clone().text()).toContain(response.status);
  return response;
}

/** Settles a processing bank debit on the double's page: the debit clears (`pay`) or fails (`fail`). */
export async function settleCheckout(t: Pick<TestApp, 'url' | 'config'>, checkoutUrl: string, outcome: 'pay' | 'fail') {
  const response = await fetch(`${onTestServer(t, checkoutUrl)}/settle`, {
    method: 'POST',
    body: `outcome=${outcome}`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  expect(response.status, await response.clone().text()).toBe(200);
}

/** The running totals as stored: the offering's row, its classes' units held, its investors' parts (those not all zero). */
export async function storedTotals(db: Executor, offeringId: string) {
  const [offering] = await db.select().from(offerings).where(eq(offerings.id, offeringId));
  const classes = await db.select().from(securityClasses).where(eq(securityClasses.offeringId, offeringId));
  const parts = await db.select().from(offeringInvestors).where(eq(offeringInvestors.offeringId, offeringId));
  return {
    committedCents: offering!.committedCents,
    raisedCents: offering!.raisedCents,
    investors: offering!.investors,
    accreditedInvestors: offering!.accreditedInvestors,
    unitsHeld: Object.fromEntries(classes.map((row) => [row.id, row.unitsHeld])),
    parts: Object.fromEntries(
      parts
        .filter((row) => row.holdingSubscriptions !== 0 || row.accreditedSubscriptions !== 0 || row.committedCents !== 0)
        .map((row) => [
          row.userId,
          { holding: row.holdingSubscriptions, accredited: row.accreditedSubscriptions, committedCents: row.committedCents },
        ]),
    ),
  };
}

/** The same totals summed from the subscriptions themselves, as the list, the get and the oversell check did before. */
export async function summedTotals(db: Executor, offeringId: string) {
  const rows = await db.select().from(subscriptions).where(eq(subscriptions.offeringId, offeringId));
  const classes = await db.select().from(securityClasses).where(eq(securityClasses.offeringId, offeringId));
  const holding = rows.filter((row) => (HOLDING_STATUSES as readonly string[]).includes(row.status));
  const funded = rows.filter((row) => (FUNDED_STATUSES as readonly string[]).includes(row.status));
  const sum = (list: typeof rows, pick: (row: (typeof rows)[number]) => number) => list.reduce((total, row) => total + pick(row), 0);
  const parts: Record<string, { holding: number; accredited: number; committedCents: number }> = {};
  for (const row of holding) {
    const part = (parts[row.userId] ??= { holding: 0, accredited: 0, committedCents: 0 });
    part.holding += 1;
    part.accredited += row.accreditationStatus === 'accredited' ? 1 : 0;
    part.committedCents += row.amountCents;
  }
  return {
    committedCents: sum(holding, (row) => row.amountCents),
    raisedCents: sum(funded, (row) => row.amountCents),
    investors: new Set(holding.map((row) => row.userId)).size,
    accreditedInvestors: new Set(holding.filter((row) => row.accreditationStatus === 'accredited').map((row) => row.userId)).size,
    unitsHeld: Object.fromEntries(
      classes.map((row) => [
        row.id,
        sum(
          holding.filter((sub) => sub.securityClassId === row.id),
          (sub) => sub.units,
        ),
      ]),
    ),
    parts,
  };
}
