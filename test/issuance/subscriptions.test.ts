import { eq, sql } from 'drizzle-orm';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accreditations } from '../../src/identity/identity.tables.ts';
import { subscriptionTransitions } from '../../src/issuance/issuance.tables.ts';
import { outboxEvents } from '../../src/platform/platform.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { payCheckout, seedInvestor, seedOffering, settleCheckout, subscriptionBody } from '../support/issuance.ts';
import { stripeClient } from '../../src/issuance/payments/stripe.provider.ts';
import { startReceiver } from '../support/webhook-receiver.ts';

let t: TestApp;
let admin: Record<string, string>;
beforeAll(async () => {
  t = await startTestApp();
  admin = (await t.signIn('admin@example.com')).auth;
});
afterAll(() => t.close());

const subscribe = (offeringId: string, body: unknown, auth: Record<string, string>) =>
  t.post(`/issuance/offerings/${offeringId}/subscriptions`, body, auth);

/** A subscription taken to pending_review: created, signed, paid through the Stripe double. */
async function funded(auth: Record<string, string>, offeringId: string, securityId: string, units = 10) {
  const created = await subscribe(offeringId, subscriptionBody(securityId, units), auth);
  expect(created.status, created.text).toBe(201);
  const id = created.body.data.id as string;
  expect((await t.post(`/issuance/subscriptions/${id}/sign-agreement`, { signerName: 'John Smith', consent: true }, auth)).status).toBe(
    200,
  );
  const checkout = await t.post(`/issuance/subscriptions/${id}/create-checkout-session`, undefined, auth);
  await payCheckout(t, checkout.body.data.checkout_url);
  const after = await t.get(`/issuance/subscriptions/${id}`, auth);
  expect(after.body.data.status).toBe('pending_review');
  return id;
}

describe('the whole journey over real HTTP', () => {
  it('exchange → KYC → accreditation → 506(c) subscription → sign → Stripe checkout → signed webhook → approve → shares → webhooks', async () => {
    const receiver = await startReceiver();
    try {
      await t.post(
        '/notifications/webhooks',
        { url: receiver.url, eventTypes: ['subscription.funded', 'subscription.completed', 'share.issued'] },
        { 'x-api-key': t.apiKey },
      );
      const investor = await seedInvestor(t, 'journey-investor@example.com');
      const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506c', pricePerUnit: '25.50' });

      const created = await subscribe(offeringId, subscriptionBody(securityId, 40, { trancheId: 'tranche-1' }), investor.auth);
      expect(created.status).toBe(201);
      expect(created.body.data).toMatchObject({
        status: 'pending_signature',
        units_subscribed: 40,
        price_per_unit: '25.50',
        amount: '1020.00',
        tranche_id: 'tranche-1',
      });
      const id = created.body.data.id;
      expect((await t.get(`/issuance/offerings/${offeringId}`, investor.auth)).body.data.amounts).toMatchObject({
        raised: '0.00',
        remaining: '498980.00',
      });

      const signed = await t.post(
        `/issuance/subscriptions/${id}/sign-agreement`,
        { signerName: 'John Smith', consent: true },
        { ...investor.auth, 'user-agent': 'journey-test/1.0' },
      );
      expect(signed.body.data.status).toBe('pending_payment');

      const checkout = await t.post(`/issuance/subscriptions/${id}/create-checkout-session`, undefined, investor.auth);
      expect(checkout.body.data).toMatchObject({
        amount: '1020.00',
        currency: 'USD',
        checkout_url: expect.stringContaining('/pay/cs_test_'),
      });
      const session = (await t.stripe.session(checkout.body.data.session_id))!;
      expect(session.amount_total).toBe(40 * 2550);
      expect(session.metadata).toEqual({ subscription_id: id });
      expect((await t.post(`/issuance/subscriptions/${id}/create-checkout-session`, undefined, investor.auth)).body.data.session_id).toBe(
        session.id,
      );

      await payCheckout(t, checkout.body.data.checkout_url);
      const paid = await t.get(`/issuance/subscriptions/${id}`, investor.auth);
      expect(paid.body.data).toMatchObject({ status: 'pending_review', payment_status: 'paid' });

      const queue = await t.get('/admin/subscriptions', admin);
      expect(queue.body.data.items.map((s: { id: string }) => s.id)).toContain(id);
      const approved = await t.post(`/admin/subscriptions/${id}/approve`, {}, admin);
      expect(approved.body.data).toMatchObject({ status: 'completed' });

      const shares = await t.get('/issuance/shares', investor.auth);
      expect(shares.body.data.items).toEqual([
        expect.objectContaining({
          units: 40,
          price_per_unit: '25.50',
          total_cost_basis: '1020.00',
          acquisition_type: 'primary',
          restricted: true,
          status: 'active',
          security: { id: securityId, name: 'Series A Preferred', category: 'preferred_equity' },
          offering: { id: offeringId, name: 'Acme Series A' },
        }),
      ]);
      const share = shares.body.data.items[0];
      const oneYearLater = new Date(`${share.acquisition_date}T00:00:00Z`);
      oneYearLater.setUTCFullYear(oneYearLater.getUTCFullYear() + 1);
      expect(share.holding_period_end_date).toBe(oneYearLater.toISOString().slice(0, 10));
      expect((await t.get(`/issuance/shares/${share.id}`, investor.auth)).body.data.id).toBe(share.id);
      expect((await t.get(`/issuance/offerings/${offeringId}`, investor.auth)).body.data).toMatchObject({
        amounts: { raised: '1020.00' },
        investors: { total: 1, accredited: 1, non_accredited: 0 },
      });

      // Approval and completion share one transaction and so one created_at: the timeline still
      // gives them in the order they happened, every time.
      const timeline = await t.get(`/admin/subscriptions/${id}/timeline`, admin);
      expect(
        timeline.body.data.items.map((row: { from_status: string | null; to_status: string }) => [row.from_status, row.to_status]),
      ).toEqual([
        [null, 'pending_signature'],
        ['pending_signature', 'pending_payment'],
        ['pending_payment', 'pending_review'],
        ['pending_review', 'approved'],
        ['approved', 'completed'],
      ]);
      // The evidence's PII is sealed at rest; the row keeps only what is not PII readable.
      const [stored] = await t.db
        .execute(sql`select signature from subscriptions where id = ${id}`)
        .then((r) => (r as { rows: { signature: Record<string, unknown> }[] }).rows);
      expect(Object.keys(stored!.signature).sort()).toEqual(
        ['agreementDocumentId', 'agreementSha256', 'agreementVersion', 'consentText', 'method', 'signedAt', 'signerUserId'].sort(),
      );
      expect(await t.modules.issuance.subscriptions.signatureEvidence(t.org.id, id)).toMatchObject({
        signerName: 'John Smith',
        signerEmail: 'journey-investor@example.com',
        userAgent: 'journey-test/1.0',
        agreementVersion: 1,
        agreementSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        ip: '127.0.0.1',
      });

      while (await t.modules.notifications.dispatcher.runOnce());
      const types = receiver.received.map((request) => JSON.parse(request.body).type);
      expect(types).toEqual(expect.arrayContaining(['subscription.funded', 'share.issued', 'subscription.completed']));
    } finally {
      await receiver.close();
    }
  });
});

describe('eligibility rules', () => {
  it('KYC missing: 403 KYC_REQUIRED', async () => {
    const investor = await seedInvestor(t, 'no-kyc@example.com', { kyc: false, accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506b' });
    const response = await subscribe(offeringId, subscriptionBody(securityId, 10), investor.auth);
    expect(response.status).toBe(403);
    expect(response.body.error.code).toBe('KYC_REQUIRED');
  });

  it('506(c) without verified accreditation, or with an expired one: 403 ACCREDITATION_REQUIRED', async () => {
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506c' });
    const selfCertified = await seedInvestor(t, 'self-cert@example.com', { accreditation: 'self_certified' });
    const refused = await subscribe(offeringId, subscriptionBody(securityId, 10), selfCertified.auth);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('ACCREDITATION_REQUIRED');

    const lapsed = await seedInvestor(t, 'lapsed@example.com');
    await t.db
      .update(accreditations)
      .set({ expiresAt: sql`now() - interval '1 day'` })
      .where(eq(accreditations.userId, lapsed.userId));
    const expired = await subscribe(offeringId, subscriptionBody(securityId, 10), lapsed.auth);
    expect(expired.body.error).toMatchObject({ code: 'ACCREDITATION_REQUIRED', message: expect.stringContaining('expired') });
  });

  it('checks eligibility again at signing', async () => {
    const investor = await seedInvestor(t, 'resign@example.com');
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506c' });
    const created = await subscribe(offeringId, subscriptionBody(securityId, 10), investor.auth);
    await t.db
      .update(accreditations)
      .set({ expiresAt: sql`now() - interval '1 day'` })
      .where(eq(accreditations.userId, investor.userId));
    const sign = await t.post(
      `/issuance/subscriptions/${created.body.data.id}/sign-agreement`,
      { signerName: 'J S', consent: true },
      investor.auth,
    );
    expect(sign.body.error.code).toBe('ACCREDITATION_REQUIRED');
  });

  it('Reg CF: a non-accredited investor is held to the 12-month limit, exactly at its boundary', async () => {
    const investor = await seedInvestor(t, 'crowd@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_cf', pricePerUnit: '100.00' });
    const body = (units: number, extra: Record<string, unknown> = {}) =>
      subscriptionBody(securityId, units, {
        accreditationStatus: 'non_accredited',
        annualIncome: '60000.00',
        netWorth: '80000.00',
        ...extra,
      });
    expect(
      (await subscribe(offeringId, subscriptionBody(securityId, 1, { accreditationStatus: 'non_accredited' }), investor.auth)).body.error
        .field,
    ).toBe('annualIncome');
    const over = await subscribe(offeringId, body(41), investor.auth);
    expect(over.status).toBe(403);
    expect(over.body.error).toMatchObject({ code: 'INVESTMENT_LIMIT_EXCEEDED', message: expect.stringContaining('4000.00') });
    expect((await subscribe(offeringId, body(30), investor.auth)).status).toBe(201);
    expect((await subscribe(offeringId, body(11), investor.auth)).body.error.code).toBe('INVESTMENT_LIMIT_EXCEEDED');
    expect((await subscribe(offeringId, body(10), investor.auth)).status).toBe(201);
    expect((await subscribe(offeringId, body(1), investor.auth)).status).toBe(403);
    const elsewhere = await seedInvestor(t, 'crowd2@example.com', { accreditation: 'none' });
    expect((await subscribe(offeringId, body(25, { otherRegCfInvestments: '1500.01' }), elsewhere.auth)).status).toBe(403);
    expect((await subscribe(offeringId, body(25, { otherRegCfInvestments: '1500.00' }), elsewhere.auth)).status).toBe(201);
  });

  it('Reg CF: only a verified accreditation lifts the 12-month limit, not a pending or denied self-certification', async () => {
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_cf', pricePerUnit: '10.00' });
    const pending = await seedInvestor(t, 'crowd-pending@example.com', { accreditation: 'self_certified' });
    const large = subscriptionBody(securityId, 5_000);
    expect((await subscribe(offeringId, large, pending.auth)).body.error.field).toBe('annualIncome');
    const accreditation = (await t.get('/identity/accreditations', pending.auth)).body.data;
    const denied = await t.post(`/admin/accreditations/${accreditation.id}/deny`, { reason: 'no evidence' }, admin);
    expect(denied.status).toBe(200);
    expect((await subscribe(offeringId, large, pending.auth)).body.error.field).toBe('annualIncome');
    const verified = await seedInvestor(t, 'crowd-verified@example.com', { accreditation: 'verified' });
    expect((await subscribe(offeringId, large, verified.auth)).status).toBe(201);
  });

  it('Reg CF: only the last 12 months count', async () => {
    const investor = await seedInvestor(t, 'crowd-window@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_cf', pricePerUnit: '100.00' });
    const body = (units: number) =>
      subscriptionBody(securityId, units, { accreditationStatus: 'non_accredited', annualIncome: '30000.00', netWorth: '20000.00' });
    const old = await subscribe(offeringId, body(25), investor.auth);
    expect(old.status).toBe(201);
    expect((await subscribe(offeringId, body(1), investor.auth)).body.error.code).toBe('INVESTMENT_LIMIT_EXCEEDED');
    await t.db.execute(sql`update subscriptions set created_at = now() - interval '366 days' where id = ${old.body.data.id}`);
    expect((await subscribe(offeringId, body(25), investor.auth)).status).toBe(201);
  });

  it('minimum and maximum investment', async () => {
    const investor = await seedInvestor(t, 'minmax@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, {
      exemptionType: 'reg_d_506b',
      minimumInvestment: '500.00',
      maximumInvestment: '1000.00',
    });
    const low = await subscribe(offeringId, subscriptionBody(securityId, 49), investor.auth);
    expect(low.body.error).toMatchObject({ code: 'VALIDATION_ERROR', field: 'unitsSubscribed' });
    expect((await subscribe(offeringId, subscriptionBody(securityId, 50), investor.auth)).status).toBe(201);
    expect((await subscribe(offeringId, subscriptionBody(securityId, 51), investor.auth)).body.error.code).toBe(
      'INVESTMENT_LIMIT_EXCEEDED',
    );
    expect((await subscribe(offeringId, subscriptionBody(securityId, 50), investor.auth)).status).toBe(201);
  });

  it('an amount past what the database can hold is a 409 over the maximum amount, not a 500', async () => {
    const investor = await seedInvestor(t, 'huge@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, {
      exemptionType: 'reg_d_506b',
      pricePerUnit: '9999999999999.99',
      minimumInvestment: '1.00',
      maximumAmount: '9999999999999.99',
      unitsAuthorized: 1_000_000,
    });
    // 10 000 units at ~10^15 cents: ~10^19 cents, past a bigint.
    const huge = await subscribe(offeringId, subscriptionBody(securityId, 10_000), investor.auth);
    expect(huge.status, huge.text).toBe(409);
    expect(huge.body.error).toMatchObject({ code: 'OFFERING_FULL', message: expect.stringContaining('maximum amount') });
    expect((await subscribe(offeringId, subscriptionBody(securityId, 1), investor.auth)).status).toBe(201);
  });

  it('closed or paused offerings take no subscriptions', async () => {
    const investor = await seedInvestor(t, 'closed@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506b' });
    await t.post(`/admin/offerings/${offeringId}/pause`, {}, admin);
    const paused = await subscribe(offeringId, subscriptionBody(securityId, 10), investor.auth);
    expect(paused.body.error).toMatchObject({ code: 'INVALID_STATE', message: 'The offering is paused, not open' });
    await t.post(`/admin/offerings/${offeringId}/close`, {}, admin);
    expect((await subscribe(offeringId, subscriptionBody(securityId, 10), investor.auth)).body.error.code).toBe('INVALID_STATE');
  });

  it('validates the body and the class', async () => {
    const investor = await seedInvestor(t, 'body@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506b' });
    const other = await seedOffering(t, admin, { exemptionType: 'reg_d_506b' });
    expect((await subscribe(offeringId, subscriptionBody(other.securityId, 10), investor.auth)).body.error.field).toBe('securityClassId');
    expect((await subscribe(offeringId, subscriptionBody(securityId, 0), investor.auth)).body.error.field).toBe('unitsSubscribed');
    expect(
      (await subscribe(offeringId, subscriptionBody(securityId, 10, { paymentMethod: 'crypto' }), investor.auth)).body.error.field,
    ).toBe('paymentMethod');
    expect(
      (await subscribe(offeringId, subscriptionBody(securityId, 10, { suitabilityConfirmed: false }), investor.auth)).body.error.field,
    ).toBe('suitabilityConfirmed');
  });
});

describe('lifecycle', () => {
  it('cancel from each state: allowed before payment lands, refused after', async () => {
    const investor = await seedInvestor(t, 'cancel@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506b', unitsAuthorized: 100 });

    const pendingSignature = await subscribe(offeringId, subscriptionBody(securityId, 10), investor.auth);
    const cancelled = await t.delete(`/issuance/subscriptions/${pendingSignature.body.data.id}`, investor.auth);
    expect(cancelled.body.data).toMatchObject({ status: 'cancelled', cancel_reason: 'cancelled by the investor' });

    const pendingPayment = await subscribe(offeringId, subscriptionBody(securityId, 10), investor.auth);
    await t.post(
      `/issuance/subscriptions/${pendingPayment.body.data.id}/sign-agreement`,
      { signerName: 'J S', consent: true },
      investor.auth,
    );
    const checkout = await t.post(
      `/issuance/subscriptions/${pendingPayment.body.data.id}/create-checkout-session`,
      undefined,
      investor.auth,
    );
    expect((await t.delete(`/issuance/subscriptions/${pendingPayment.body.data.id}`, investor.auth)).body.data.status).toBe('cancelled');
    expect((await t.stripe.session(checkout.body.data.session_id))!.status).toBe('expired');

    const reviewId = await funded(investor.auth, offeringId, securityId);
    const refused = await t.delete(`/issuance/subscriptions/${reviewId}`, investor.auth);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('INVALID_STATE');
    expect((await t.post(`/admin/subscriptions/${reviewId}/reject`, { reason: 'issuer declined' }, admin)).body.data).toMatchObject({
      status: 'rejected',
      payment_status: 'refunded',
    });
    expect(await t.stripe.refunds()).toHaveLength(1);
    expect((await t.delete(`/issuance/subscriptions/${reviewId}`, investor.auth)).status).toBe(409);

    const securities = await t.get(`/issuance/offerings/${offeringId}/securities`, investor.auth);
    expect(securities.body.data.items[0].units_available).toBe(100);
  });

  it('a checkout that expires releases the units', async () => {
    const investor = await seedInvestor(t, 'expire@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, {
      exemptionType: 'reg_d_506b',
      unitsAuthorized: 10,
      minimumInvestment: '1.00',
    });
    const created = await subscribe(offeringId, subscriptionBody(securityId, 10), investor.auth);
    await t.post(`/issuance/subscriptions/${created.body.data.id}/sign-agreement`, { signerName: 'J S', consent: true }, investor.auth);
    const checkout = await t.post(`/issuance/subscriptions/${created.body.data.id}/create-checkout-session`, undefined, investor.auth);
    expect((await subscribe(offeringId, subscriptionBody(securityId, 1), investor.auth)).body.error.code).toBe('OFFERING_FULL');
    const stripe = stripeClient('sk_test_x', t.stripe.apiBase());
    await stripe.checkout.sessions.expire(checkout.body.data.session_id);
    expect((await t.get(`/issuance/subscriptions/${created.body.data.id}`, investor.auth)).body.data).toMatchObject({
      status: 'cancelled',
      cancel_reason: 'checkout_expired',
    });
    expect((await subscribe(offeringId, subscriptionBody(securityId, 10), investor.auth)).status).toBe(201);
  });

  it('ACH settles later: completed unpaid, then async_payment_succeeded funds it; a failure lets the investor retry', async () => {
    const investor = await seedInvestor(t, 'ach@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506b' });
    const created = await subscribe(offeringId, subscriptionBody(securityId, 10, { paymentMethod: 'us_bank_account' }), investor.auth);
    const id = created.body.data.id;
    await t.post(`/issuance/subscriptions/${id}/sign-agreement`, { signerName: 'J S', consent: true }, investor.auth);
    const first = await t.post(`/issuance/subscriptions/${id}/create-checkout-session`, undefined, investor.auth);
    await payCheckout(t, first.body.data.checkout_url);
    expect((await t.get(`/issuance/subscriptions/${id}`, investor.auth)).body.data).toMatchObject({
      status: 'pending_payment',
      payment_status: 'processing',
    });
    await settleCheckout(t, first.body.data.checkout_url, 'fail');
    expect((await t.get(`/issuance/subscriptions/${id}`, investor.auth)).body.data.payment_status).toBe('failed');
    const second = await t.post(`/issuance/subscriptions/${id}/create-checkout-session`, undefined, investor.auth);
    expect(second.body.data.session_id).not.toBe(first.body.data.session_id);
    await payCheckout(t, second.body.data.checkout_url);
    await settleCheckout(t, second.body.data.checkout_url, 'pay');
    expect((await t.get(`/issuance/subscriptions/${id}`, investor.auth)).body.data).toMatchObject({
      status: 'pending_review',
      payment_status: 'paid',
    });
  });
});

describe('payments security', () => {
  it('refuses forged and stale Stripe signatures', async () => {
    const event = (await t.stripe.sentEvents()).at(-1)!;
    const post = (signature: string) =>
      t.request('POST', '/issuance/payments/stripe/webhook', {
        rawBody: event.payload,
        headers: { 'content-type': 'application/json', 'stripe-signature': signature },
      });
    const forged = new Stripe('sk_test_x').webhooks.generateTestHeaderString({ payload: event.payload, secret: 'whsec_not_ours' });
    expect((await post(forged)).status).toBe(401);
    expect((await post('t=1,v1=deadbeef')).status).toBe(401);
    const stale = new Stripe('sk_test_x').webhooks.generateTestHeaderString({
      payload: event.payload,
      secret: t.stripe.webhookSecret,
      timestamp: Math.floor(Date.now() / 1000) - 600,
    });
    expect((await post(stale)).status).toBe(401);
    const fresh = new Stripe('sk_test_x').webhooks.generateTestHeaderString({ payload: event.payload, secret: t.stripe.webhookSecret });
    expect((await post(fresh)).status).toBe(200);
    const response = await t.request('POST', '/issuance/payments/stripe/webhook', {
      rawBody: event.payload,
      headers: { 'content-type': 'application/json' },
    });
    expect(response.status).toBe(401);
  });
});

describe('concurrency', () => {
  it('200 parallel subscriptions for room for 10: exactly 10 succeed, the rest get OFFERING_FULL', async () => {
    const investor = await seedInvestor(t, 'rush@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, {
      exemptionType: 'reg_d_506b',
      unitsAuthorized: 10,
      minimumInvestment: '1.00',
    });
    const results = await Promise.all(
      Array.from({ length: 200 }, () => subscribe(offeringId, subscriptionBody(securityId, 1), investor.auth)),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(10);
    const refused = results.filter((r) => r.status !== 201);
    expect(refused).toHaveLength(190);
    expect(new Set(refused.map((r) => r.body.error.code))).toEqual(new Set(['OFFERING_FULL']));
    expect((await t.get(`/issuance/securities/${securityId}`, investor.auth)).body.data.units_available).toBe(0);
    // 200 requests queue on one investor's lock and one offering row: room for a slow machine.
  }, 120_000);

  it('the same Stripe event delivered 5 times at once funds once', async () => {
    const investor = await seedInvestor(t, 'redeliver@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506b' });
    const id = await funded(investor.auth, offeringId, securityId);
    const completed = (await t.stripe.sentEvents()).filter((event) => event.type === 'checkout.session.completed').at(-1)!;
    await Promise.all(Array.from({ length: 5 }, () => t.stripe.redeliver(completed)));
    const fundedEvents = (await t.db.select().from(outboxEvents).where(eq(outboxEvents.type, 'subscription.funded'))).filter(
      (event) => (event.data as { subscription_id: string }).subscription_id === id,
    );
    expect(fundedEvents).toHaveLength(1);
    const transitions = await t.db.select().from(subscriptionTransitions).where(eq(subscriptionTransitions.subscriptionId, id));
    expect(transitions.filter((row) => row.toStatus === 'pending_review')).toHaveLength(1);
  });

  it('approve racing cancel, and approve racing reject: one wins, the state is consistent', async () => {
    const investor = await seedInvestor(t, 'race-approve@example.com', { accreditation: 'none' });
    const { offeringId, securityId } = await seedOffering(t, admin, { exemptionType: 'reg_d_506b' });
    const first = await funded(investor.auth, offeringId, securityId);
    const [approve, cancel] = await Promise.all([
      t.post(`/admin/subscriptions/${first}/approve`, {}, admin),
      t.delete(`/issuance/subscriptions/${first}`, investor.auth),
    ]);
    expect(approve.status).toBe(200);
    expect(cancel.status).toBe(409);

    const second = await funded(investor.auth, offeringId, securityId);
    const outcomes = await Promise.all([
      t.post(`/admin/subscriptions/${second}/approve`, {}, admin),
      t.post(`/admin/subscriptions/${second}/reject`, { reason: 'race' }, admin),
    ]);
    expect(outcomes.map((r) => r.status).sort()).toEqual([200, 409]);
    const final = (await t.get(`/issuance/subscriptions/${second}`, investor.auth)).body.data.status;
    const shares = (await t.get(`/issuance/shares?offering_id=${offeringId}`, investor.auth)).body.data.items;
    expect(shares).toHaveLength(final === 'completed' ? 2 : 1);
  });
});
