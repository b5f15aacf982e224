import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { orgsRepo } from '../../src/identity/orgs/orgs.repo.ts';
import { orgsService } from '../../src/identity/orgs/orgs.service.ts';
import { subscriptions } from '../../src/issuance/issuance.tables.ts';
import { outboxEvents } from '../../src/platform/platform.tables.ts';
import { restartableTestDatabase, startTestApp, testKeyring, type TestApp } from '../support/harness.ts';
import { onTestServer, payCheckout, seedInvestor, seedOffering, settleCheckout, subscriptionBody } from '../support/issuance.ts';

let t: TestApp;
let admin: Record<string, string>;
beforeAll(async () => {
  t = await startTestApp();
  admin = (await t.signIn('admin@example.com')).auth;
});
afterAll(() => t.close());

/** A signed subscription waiting for payment, and a way to open its checkout with an optional body. */
async function pendingPayment(app: TestApp, email: string, paymentMethod: 'card' | 'us_bank_account' = 'card') {
  const adminAuth = app === t ? admin : (await app.signIn('admin@example.com')).auth;
  const investor = await seedInvestor(app, email, { accreditation: 'none' });
  const { offeringId, securityId } = await seedOffering(app, adminAuth, { exemptionType: 'reg_d_506b' });
  const created = await app.post(
    `/issuance/offerings/${offeringId}/subscriptions`,
    subscriptionBody(securityId, 10, { paymentMethod }),
    investor.auth,
  );
  expect(created.status, created.text).toBe(201);
  const id = created.body.data.id as string;
  await app.post(`/issuance/subscriptions/${id}/sign-agreement`, { signerName: 'J S', consent: true }, investor.auth);
  const checkout = (body?: unknown) => app.post(`/issuance/subscriptions/${id}/create-checkout-session`, body, investor.auth);
  const state = async () => (await app.get(`/issuance/subscriptions/${id}`, investor.auth)).body.data;
  return { id, investor, checkout, state };
}

const outboxFor = async (app: TestApp, id: string, type: string) =>
  (await app.db.select().from(outboxEvents).where(eq(outboxEvents.type, type))).filter(
    (event) => (event.data as { subscription_id: string }).subscription_id === id,
  );

describe('checkout return URLs', () => {
  it('sends the browser to the given successUrl, with {CHECKOUT_SESSION_ID} filled in by Stripe', async () => {
    const { checkout, state } = await pendingPayment(t, 'return-url@example.com');
    const successUrl = 'https://app.example.com/invest/done?session_id={CHECKOUT_SESSION_ID}';
    const created = await checkout({ successUrl, cancelUrl: 'https://app.example.com/invest/cancelled' });
    expect(created.status, created.text).toBe(200);
    const sessionId = created.body.data.session_id as string;
    const session = (await t.stripe.session(sessionId))!;
    expect(session.success_url).toBe(successUrl);
    expect(session.cancel_url).toBe('https://app.example.com/invest/cancelled');
    const paid = await payCheckout(t, created.body.data.checkout_url);
    expect(paid.headers.get('location')).toBe(`https://app.example.com/invest/done?session_id=${sessionId}`);
    expect(await state()).toMatchObject({ status: 'pending_review', payment_status: 'paid' });
  });

  it('without return URLs, the browser lands on our hosted pages, which open without a token', async () => {
    const { checkout } = await pendingPayment(t, 'default-return@example.com');
    const created = await checkout();
    const session = (await t.stripe.session(created.body.data.session_id))!;
    expect(session.success_url).toBe(`${t.config.publicUrl}/issuance/payments/checkout/success?session_id={CHECKOUT_SESSION_ID}`);
    const page = await fetch(onTestServer(t, (await t.stripe.session(created.body.data.session_id))!.url));
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(`cancelled?session_id=${session.id}`);
    const paid = await payCheckout(t, created.body.data.checkout_url);
    const landing = await fetch(onTestServer(t, paid.headers.get('location')!));
    expect(landing.status).toBe(200);
    expect(landing.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await landing.text()).toContain('Payment submitted');
    const cancelled = await fetch(onTestServer(t, session.cancel_url.replace('{CHECKOUT_SESSION_ID}', session.id)));
    expect(cancelled.status).toBe(200);
    expect(await cancelled.text()).toContain('Payment cancelled');
  });

  it('refuses return URLs that are not absolute http(s) URLs, naming the field', async () => {
    const { checkout } = await pendingPayment(t, 'bad-return@example.com');
    for (const [body, field] of [
      [{ successUrl: 'not a url' }, 'successUrl'],
      [{ successUrl: '/relative/path' }, 'successUrl'],
      [{ cancelUrl: 'javascript:alert(1)' }, 'cancelUrl'],
      [{ successUrl: 'ftp://files.example.com/done' }, 'successUrl'],
      [{ successUrl: 'https://user:secret@app.example.com/done' }, 'successUrl'],
    ] as const) {
      const response = await checkout(body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.body.error.code).toBe('VALIDATION_ERROR');
      expect(JSON.stringify(response.body.error.details)).toContain(field);
    }
    expect((await checkout({ successUrl: 'https://app.example.com/done', extra: true })).status).toBe(400);
    // Development mode (this app): http is fine, e.g. a front end on localhost.
    expect((await checkout({ successUrl: 'http://localhost:5173/done' })).status).toBe(200);
  });

  it('in production mode: https only, and only the origins in CHECKOUT_RETURN_ORIGINS', async () => {
    const production = await startTestApp({ checkoutReturn: { origins: ['https://app.example.com'], allowHttp: false } });
    try {
      const { checkout } = await pendingPayment(production, 'prod-return@example.com');
      const http = await checkout({ successUrl: 'http://app.example.com/done' });
      expect(http.status).toBe(400);
      expect(http.body.error).toMatchObject({
        code: 'VALIDATION_ERROR',
        details: [{ field: 'successUrl', message: 'must be an https URL' }],
      });
      const elsewhere = await checkout({ successUrl: 'https://app.example.com/done', cancelUrl: 'https://evil.example.net/back' });
      expect(elsewhere.status).toBe(400);
      expect(elsewhere.body.error.details[0].field).toBe('cancelUrl');
      const allowed = await checkout({ successUrl: 'https://app.example.com/done', cancelUrl: 'https://app.example.com/back' });
      expect(allowed.status, allowed.text).toBe(200);
    } finally {
      await production.close();
    }
  });
});

describe("checkout return URLs: the org's allowed redirect origins", () => {
  it('once an org names its redirect origins, return URLs must be on one of them; other orgs are unaffected', async () => {
    const { checkout } = await pendingPayment(t, 'org-origins@example.com');
    await t.modules.identity.orgs.setRedirectOrigins(t.org.id, ['https://invest.example.com/', 'https://invest.example.com']);
    try {
      expect((await t.modules.identity.orgs.getOrg(t.org.id))!.redirectOrigins).toEqual(['https://invest.example.com']);
      const elsewhere = await checkout({ successUrl: 'https://app.example.com/done' });
      expect(elsewhere.status, elsewhere.text).toBe(400);
      expect(elsewhere.body.error).toMatchObject({ code: 'VALIDATION_ERROR', details: [{ field: 'successUrl' }] });
      expect(elsewhere.body.error.message).toContain('https://invest.example.com');
      const allowed = await checkout({ successUrl: 'https://invest.example.com/done', cancelUrl: 'https://invest.example.com/back' });
      expect(allowed.status, allowed.text).toBe(200);

      const other = await t.createOrg({ name: 'No origins org' });
      expect((await t.modules.identity.orgs.getOrg(other.org.id))!.redirectOrigins).toEqual([]);
    } finally {
      await t.modules.identity.orgs.setRedirectOrigins(t.org.id, []);
    }
  });

  it('refuses a redirect origin that is not an origin (or not https in production mode), naming the entry, and changes nothing', async () => {
    const production = orgsService({
      db: t.db,
      repo: orgsRepo(t.db),
      keyring: t.keyring,
      allowInsecureHttp: false,
      audit: t.modules.audit,
    });
    const cases: [ReturnType<typeof orgsService>, string][] = [
      [t.modules.identity.orgs, 'https://app.example.com/path'],
      [t.modules.identity.orgs, 'not an origin'],
      [t.modules.identity.orgs, 'ftp://files.example.com'],
      [t.modules.identity.orgs, 'https://u:p@app.example.com'],
      [production, 'http://app.example.com'],
    ];
    for (const [orgs, origin] of cases) {
      await expect(orgs.setRedirectOrigins(t.org.id, ['https://ok.example.com', origin]), origin).rejects.toMatchObject({
        code: 'VALIDATION_ERROR',
        details: [{ field: 'redirectOrigins.1' }],
      });
    }
    expect((await t.modules.identity.orgs.getOrg(t.org.id))!.redirectOrigins).toEqual([]);
    await expect(t.modules.identity.orgs.setRedirectOrigins('00000000-0000-4000-8000-000000000000', [])).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
  });

  it('an open checkout asked for with other return URLs is expired and replaced; with the same ones it is returned again', async () => {
    const { id, checkout, state } = await pendingPayment(t, 'reopen@example.com');
    const first = await checkout({ successUrl: 'https://app.example.com/a' });
    expect(first.status, first.text).toBe(200);
    const again = await checkout({ successUrl: 'https://app.example.com/a' });
    expect(again.body.data.session_id).toBe(first.body.data.session_id);
    const replaced = await checkout({ successUrl: 'https://app.example.com/b' });
    expect(replaced.status, replaced.text).toBe(200);
    expect(replaced.body.data.session_id).not.toBe(first.body.data.session_id);
    expect((await t.stripe.session(first.body.data.session_id))!.status).toBe('expired');
    const session = (await t.stripe.session(replaced.body.data.session_id))!;
    expect(session).toMatchObject({ status: 'open', success_url: 'https://app.example.com/b' });
    // The old session's expiry says nothing about the subscription: still waiting for payment.
    expect(await state()).toMatchObject({ status: 'pending_payment', payment_status: 'none' });
    const paid = await payCheckout(t, replaced.body.data.checkout_url);
    expect(paid.headers.get('location')).toBe('https://app.example.com/b');
    expect(await state()).toMatchObject({ status: 'pending_review', payment_status: 'paid' });
    expect(await outboxFor(t, id, 'subscription.cancelled')).toEqual([]);
  });

  it('concurrent checkouts with different return URLs leave one open session, the current one, and the subscription payable', async () => {
    const { id, checkout, state } = await pendingPayment(t, 'reopen-race@example.com');
    const answers = await Promise.all(['a', 'b', 'c', 'd'].map((path) => checkout({ successUrl: `https://app.example.com/${path}` })));
    for (const answer of answers) expect([200, 409], answer.text).toContain(answer.status);
    expect(answers.some((answer) => answer.status === 200)).toBe(true);
    for (const answer of answers.filter((a) => a.status === 409)) expect(answer.body.error.code).toBe('CONFLICT');
    const [row] = await t.db.select().from(subscriptions).where(eq(subscriptions.id, id));
    const sessions = await Promise.all(answers.filter((a) => a.status === 200).map((a) => t.stripe.session(a.body.data.session_id)));
    for (const session of sessions) expect(session!.status).toBe(session!.id === row!.checkoutSessionId ? 'open' : 'expired');
    expect(await state()).toMatchObject({ status: 'pending_payment', payment_status: 'none' });
    await payCheckout(t, row!.checkoutUrl!);
    expect(await state()).toMatchObject({ status: 'pending_review', payment_status: 'paid' });
    expect(await outboxFor(t, id, 'subscription.cancelled')).toEqual([]);
  });
});

describe('unhappy paths on the Stripe double', () => {
  it('a declined card leaves the checkout open to try again; nothing changes until a payment succeeds', async () => {
    const { id, checkout, state } = await pendingPayment(t, 'declined@example.com');
    const created = await checkout();
    const sessionId = created.body.data.session_id as string;
    const declined = await payCheckout(t, created.body.data.checkout_url, 'decline', [402]);
    expect(await declined.text()).toContain('Your card was declined.');
    const session = (await t.stripe.session(sessionId))!;
    expect(session).toMatchObject({ status: 'open', payment_status: 'unpaid' });
    expect(await t.stripe.paymentIntent(session.payment_intent!)).toMatchObject({
      status: 'requires_payment_method',
      last_payment_error: { code: 'card_declined', decline_code: 'generic_decline' },
      metadata: { subscription_id: id },
    });
    expect((await t.stripe.sentEvents(sessionId)).map((event) => event.type)).toEqual(['payment_intent.payment_failed']);
    expect(await state()).toMatchObject({ status: 'pending_payment', payment_status: 'none' });
    expect(await outboxFor(t, id, 'subscription.payment_failed')).toHaveLength(0);
    // The same checkout is returned again, and paying on it now goes through.
    expect((await checkout()).body.data.session_id).toBe(sessionId);
    await payCheckout(t, created.body.data.checkout_url);
    expect(await state()).toMatchObject({ status: 'pending_review', payment_status: 'paid' });
    expect(await outboxFor(t, id, 'subscription.funded')).toHaveLength(1);
  });

  it('a failed 3-D Secure authentication also leaves the checkout open', async () => {
    const { id, checkout, state } = await pendingPayment(t, 'three-ds@example.com');
    const created = await checkout();
    const failed = await payCheckout(t, created.body.data.checkout_url, 'fail_3ds', [402]);
    expect(await failed.text()).toContain('failed authentication');
    const session = (await t.stripe.session(created.body.data.session_id))!;
    expect(session.status).toBe('open');
    expect((await t.stripe.paymentIntent(session.payment_intent!))!.last_payment_error?.code).toBe('payment_intent_authentication_failure');
    expect(await state()).toMatchObject({ status: 'pending_payment', payment_status: 'none' });
    expect(await outboxFor(t, id, 'subscription.payment_failed')).toHaveLength(0);
    // A card outcome makes no sense for a bank debit, and the reverse.
    await payCheckout(t, created.body.data.checkout_url, 'ach_fail', [400]);
  });

  it('a failed bank debit marks the payment failed and lets the investor start a new checkout', async () => {
    const { id, checkout, state } = await pendingPayment(t, 'ach-fail@example.com', 'us_bank_account');
    const first = await checkout();
    await payCheckout(t, first.body.data.checkout_url, 'ach_fail');
    expect((await t.stripe.sentEvents(first.body.data.session_id)).map((event) => event.type)).toEqual([
      'checkout.session.completed',
      'checkout.session.async_payment_failed',
    ]);
    expect(await state()).toMatchObject({ status: 'pending_payment', payment_status: 'failed' });
    expect(await outboxFor(t, id, 'subscription.payment_failed')).toHaveLength(1);
    await payCheckout(t, first.body.data.checkout_url, 'pay', [409]);
    // The old page says the debit failed, and offers no settling of a debit that is over.
    const page = await (await fetch(onTestServer(t, first.body.data.checkout_url))).text();
    expect(page).toContain('The bank debit failed');
    expect(page).not.toContain('Debit fails');

    const second = await checkout();
    expect(second.body.data.session_id).not.toBe(first.body.data.session_id);
    await payCheckout(t, second.body.data.checkout_url, 'ach_succeed');
    expect(await state()).toMatchObject({ status: 'pending_review', payment_status: 'paid' });
    expect(await outboxFor(t, id, 'subscription.funded')).toHaveLength(1);
  });

  it('a bank debit left processing is settled from the pay page later', async () => {
    const { checkout, state } = await pendingPayment(t, 'ach-later@example.com', 'us_bank_account');
    const created = await checkout();
    await payCheckout(t, created.body.data.checkout_url);
    expect(await state()).toMatchObject({ status: 'pending_payment', payment_status: 'processing' });
    const page = await fetch(onTestServer(t, created.body.data.checkout_url));
    expect(await page.text()).toContain('Debit fails');
    await settleCheckout(t, created.body.data.checkout_url, 'pay');
    expect(await state()).toMatchObject({ status: 'pending_review', payment_status: 'paid' });
  });
});

describe('the Stripe double survives a restart', () => {
  it('a checkout link made before a restart is paid after it, on the same database', async () => {
    const store = await restartableTestDatabase();
    const keyring = testKeyring();
    let before: TestApp | undefined;
    let after: TestApp | undefined;
    try {
      before = await startTestApp({}, { reuse: { database: await store.open(), keyring } });
      const { id, checkout } = await pendingPayment(before, 'restart@example.com');
      const created = await checkout({ successUrl: 'https://app.example.com/done' });
      expect(created.status, created.text).toBe(200);
      await before.close();
      await before.database.close();
      before = undefined;

      after = await startTestApp({}, { reuse: { database: await store.open(), keyring } });
      const page = await fetch(onTestServer(after, created.body.data.checkout_url));
      expect(page.status).toBe(200);
      const paid = await payCheckout(after, created.body.data.checkout_url);
      expect(paid.headers.get('location')).toBe('https://app.example.com/done');
      const [row] = await after.db
        .select()
        .from(subscriptions)
        .where(and(eq(subscriptions.id, id)));
      expect(row).toMatchObject({ status: 'pending_review', paymentStatus: 'paid' });
    } finally {
      if (before) {
        await before.close();
        await before.database.close();
      }
      if (after) {
        await after.close();
        await after.database.close();
      }
      await store.dispose();
    }
  });
});
