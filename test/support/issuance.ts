import { expect } from 'vitest';
import type { TestApp } from './harness.ts';

export type OfferingSetup = {
  exemptionType?: string;
  pricePerUnit?: string;
  unitsAuthorized?: number;
  minimumInvestment?: string;
  maximumInvestment?: string;
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
      targetAmount: '100000.00',
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
