import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyReply } from 'fastify';
import Stripe from 'stripe';
import type { Db, Executor } from '../../platform/db/database.ts';
import { stripeDoubleRepo, type StoredObject } from './stripe-double.repo.ts';

/** Where the double is mounted on the main server: its API under `/v1`, its hosted pay page under `/pay`. */
export const STRIPE_DOUBLE_PREFIX = '/stripe-double';

export type Session = {
  id: string;
  object: 'checkout.session';
  mode: 'payment';
  status: 'open' | 'complete' | 'expired';
  payment_status: 'unpaid' | 'paid';
  amount_total: number;
  currency: string;
  allowed_payment_method_types: string[];
  client_reference_id: string | null;
  metadata: Record<string, string>;
  payment_intent: string | null;
  success_url: string;
  cancel_url: string;
  url: string;
  created: number;
  expires_at: number;
  livemode: false;
};

export type PaymentIntent = {
  id: string;
  object: 'payment_intent';
  amount: number;
  currency: string;
  status: 'requires_payment_method' | 'processing' | 'succeeded' | 'canceled';
  payment_method_types: string[];
  metadata: Record<string, string>;
  last_payment_error: { type: string; code: string; decline_code?: string; message: string } | null;
  created: number;
  livemode: false;
};

export type Refund = { id: string; object: 'refund'; payment_intent: string; amount: number; currency: string; status: 'succeeded' };
export type SentEvent = { id: string; type: string; payload: string; sessionId: string };

/**
 * What the hosted pay page can do. Card: `pay` succeeds; `decline` (card_declined) and `fail_3ds`
 * (payment_intent_authentication_failure) leave the session open for another try, as Checkout
 * does, and send `payment_intent.payment_failed`. Bank debit (us_bank_account): `pay` completes the
 * session unpaid (the debit is processing) until it is settled; `ach_succeed` / `ach_fail` settle
 * it at once (`checkout.session.async_payment_succeeded` / `_failed`).
 */
export const PAY_OUTCOMES = ['pay', 'decline', 'fail_3ds', 'ach_succeed', 'ach_fail'] as const;
export type PayOutcome = (typeof PAY_OUTCOMES)[number];

const CARD_ERRORS = {
  decline: { type: 'card_error', code: 'card_declined', decline_code: 'generic_decline', message: 'Your card was declined.' },
  fail_3ds: {
    type: 'invalid_request_error',
    code: 'payment_intent_authentication_failure',
    message: 'The provided PaymentMethod has failed authentication.',
  },
} as const;
const ACH_FAILURE = { type: 'card_error', code: 'insufficient_funds', message: 'The bank account has insufficient funds.' };

const newId = (prefix: string) => `${prefix}_test_${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x')}`;
const now = () => Math.floor(Date.now() / 1000);

/** Parses Stripe's form encoding (`a[b][0][c]=1`) into nested objects and arrays. */
function parseForm(body: string): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of new URLSearchParams(body)) {
    const path = key.replace(/\]/g, '').split('[');
    let node: Record<string, unknown> = root;
    path.forEach((part, index) => {
      if (index === path.length - 1) node[part] = value;
      else node = (node[part] ??= {}) as Record<string, unknown>;
    });
  }
  return root;
}

const text = (value: unknown): string => (typeof value === 'string' ? value : '');
const asArray = (value: unknown): unknown[] =>
  Array.isArray(value) ? value : value && typeof value === 'object' ? Object.values(value) : [];
const escapeHtml = (value: string) =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const returnUrl = (url: string, session: Session) => url.replaceAll('{CHECKOUT_SESSION_ID}', session.id);
const isBankDebit = (session: Session) => session.allowed_payment_method_types.includes('us_bank_account');

class StripeApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A local stand-in for Stripe, served by the main server under /stripe-double when no
 * STRIPE_SECRET_KEY is set: the Checkout Session API the `stripe` SDK calls (create with
 * idempotency keys, retrieve, expire; payment intents; refunds), a hosted pay page with happy and
 * unhappy outcomes (`PAY_OUTCOMES`), and webhook events signed like Stripe's (`Stripe-Signature`)
 * sent over HTTP to our own webhook route. Its objects live in the database, so a checkout link
 * still works after a restart. Amounts are integer cents, as at Stripe.
 */
export function stripeDouble(options: { db: Db; webhookSecret: string; publicUrl: string; webhookPath: string }) {
  const { db } = options;
  const repo = stripeDoubleRepo(db);
  const signer = new Stripe('sk_test_double');
  let server: http.Server | undefined;

  /** This process's own address (loopback when it listens on every interface): the SDK and the webhooks go there. */
  function selfUrl(): string {
    const address = server?.address() as AddressInfo | null | undefined;
    if (!address || typeof address !== 'object') throw new Error('The Stripe double is served by the API server, which is not listening');
    const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
    return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  }

  const parse = <T>(row: StoredObject | undefined) => (row ? (JSON.parse(row.body) as T) : undefined);
  const publicSession = (session: Session & { _payment_intent_metadata?: unknown }): Session => {
    const { _payment_intent_metadata: _hidden, ...visible } = session;
    return visible;
  };

  /** Records an event in the transaction; `deliver` sends it once the transaction committed. */
  async function recordEvent(type: string, object: Session | PaymentIntent, sessionId: string, tx: Executor): Promise<SentEvent> {
    const data = object.object === 'checkout.session' ? publicSession(object) : object;
    const event = {
      id: newId('evt'),
      object: 'event',
      api_version: '2026-10-28.endive',
      created: now(),
      type,
      livemode: false,
      data: { object: data },
    };
    const payload = JSON.stringify(event);
    await repo.insert({ id: event.id, objectType: 'event', relatedId: sessionId, body: payload }, tx);
    return { id: event.id, type, payload, sessionId };
  }

  async function deliver(event: SentEvent, signatureHeader?: string) {
    const header = signatureHeader ?? signer.webhooks.generateTestHeaderString({ payload: event.payload, secret: options.webhookSecret });
    await fetch(`${selfUrl()}${options.webhookPath}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': header },
      body: event.payload,
    }).catch(() => undefined);
  }

  async function deliverAll(events: SentEvent[]) {
    for (const event of events) await deliver(event);
  }

  async function createSession(form: Record<string, unknown>): Promise<Session> {
    const item = asArray(form.line_items)[0] as { quantity?: string; price_data?: { currency?: string; unit_amount?: string } } | undefined;
    const amount = Number(item?.price_data?.unit_amount) * Number(item?.quantity ?? 1);
    if (!Number.isInteger(amount) || amount <= 0)
      throw new StripeApiError(400, 'invalid_request_error', 'line_items[0][price_data][unit_amount] must be a positive integer');
    if (!text(form.success_url)) throw new StripeApiError(400, 'invalid_request_error', 'Missing required param: success_url.');
    const id = newId('cs');
    const session: Session & { _payment_intent_metadata: Record<string, string> } = {
      id,
      object: 'checkout.session',
      mode: 'payment',
      status: 'open',
      payment_status: 'unpaid',
      amount_total: amount,
      currency: String(item?.price_data?.currency ?? 'usd'),
      allowed_payment_method_types: asArray(form.allowed_payment_method_types ?? form.payment_method_types).map(String),
      client_reference_id: typeof form.client_reference_id === 'string' ? form.client_reference_id : null,
      metadata: (form.metadata ?? {}) as Record<string, string>,
      payment_intent: null,
      success_url: text(form.success_url),
      cancel_url: text(form.cancel_url),
      url: `${options.publicUrl}${STRIPE_DOUBLE_PREFIX}/pay/${id}`,
      created: now(),
      expires_at: now() + 24 * 3600,
      livemode: false,
      _payment_intent_metadata: (form.payment_intent_data as { metadata?: Record<string, string> } | undefined)?.metadata ?? {},
    };
    await repo.insert({ id, objectType: 'checkout.session', relatedId: null, body: JSON.stringify(session) });
    return publicSession(session);
  }

  async function lockSession(id: string, tx: Executor) {
    const session = parse<Session & { _payment_intent_metadata?: Record<string, string> }>(await repo.lock(id, 'checkout.session', tx));
    if (!session) throw new StripeApiError(404, 'invalid_request_error', `No such checkout.session: '${id}'`);
    return session;
  }

  const saveSession = (session: Session, tx: Executor) =>
    repo.update(session.id, { body: JSON.stringify(session), relatedId: session.payment_intent }, tx);
  const savePaymentIntent = (intent: PaymentIntent, sessionId: string, tx: Executor) =>
    repo.update(intent.id, { body: JSON.stringify(intent), relatedId: sessionId }, tx);

  /** The session's payment intent, created on the first attempt to pay (as Checkout does). */
  async function paymentIntentFor(session: Session & { _payment_intent_metadata?: Record<string, string> }, tx: Executor) {
    const existing = session.payment_intent
      ? parse<PaymentIntent>(await repo.lock(session.payment_intent, 'payment_intent', tx))
      : undefined;
    if (existing) return existing;
    const intent: PaymentIntent = {
      id: newId('pi'),
      object: 'payment_intent',
      amount: session.amount_total,
      currency: session.currency,
      status: 'requires_payment_method',
      payment_method_types: session.allowed_payment_method_types,
      metadata: session._payment_intent_metadata ?? {},
      last_payment_error: null,
      created: now(),
      livemode: false,
    };
    await repo.insert({ id: intent.id, objectType: 'payment_intent', relatedId: session.id, body: JSON.stringify(intent) }, tx);
    session.payment_intent = intent.id;
    return intent;
  }

  /** One attempt on the pay page, in one transaction; the events it caused, to send after the commit. */
  async function attempt(sessionId: string, outcome: PayOutcome) {
    return db.transaction(async (tx) => {
      const session = await lockSession(sessionId, tx);
      if (session.status !== 'open')
        return { session, events: [] as SentEvent[], status: 409, error: `This checkout is ${session.status}.` };
      const bank = isBankDebit(session);
      const fits = bank ? ['pay', 'ach_succeed', 'ach_fail'].includes(outcome) : ['pay', 'decline', 'fail_3ds'].includes(outcome);
      if (!fits)
        return { session, events: [], status: 400, error: `"${outcome}" does not apply to a ${bank ? 'bank debit' : 'card'} checkout.` };
      const intent = await paymentIntentFor(session, tx);
      const events: SentEvent[] = [];
      if (outcome === 'decline' || outcome === 'fail_3ds') {
        intent.status = 'requires_payment_method';
        intent.last_payment_error = CARD_ERRORS[outcome];
        await saveSession(session, tx);
        await savePaymentIntent(intent, session.id, tx);
        events.push(await recordEvent('payment_intent.payment_failed', intent, session.id, tx));
        return { session, events, status: 402, error: intent.last_payment_error.message };
      }
      session.status = 'complete';
      intent.last_payment_error = null;
      intent.status = bank ? 'processing' : 'succeeded';
      if (!bank) session.payment_status = 'paid';
      await saveSession(session, tx);
      await savePaymentIntent(intent, session.id, tx);
      events.push(await recordEvent('checkout.session.completed', session, session.id, tx));
      if (outcome === 'ach_succeed' || outcome === 'ach_fail')
        events.push(...(await settleLocked(session, intent, outcome === 'ach_succeed', tx)));
      return { session, events, status: 303, error: undefined };
    });
  }

  /** The bank debit clears or fails: async_payment_succeeded (paid) or async_payment_failed (the intent needs another method). */
  async function settleLocked(session: Session, intent: PaymentIntent, succeed: boolean, tx: Executor) {
    if (succeed) {
      session.payment_status = 'paid';
      intent.status = 'succeeded';
    } else {
      intent.status = 'requires_payment_method';
      intent.last_payment_error = ACH_FAILURE;
    }
    await saveSession(session, tx);
    await savePaymentIntent(intent, session.id, tx);
    return [
      await recordEvent(
        succeed ? 'checkout.session.async_payment_succeeded' : 'checkout.session.async_payment_failed',
        session,
        session.id,
        tx,
      ),
    ];
  }

  async function settle(sessionId: string, succeed: boolean) {
    return db.transaction(async (tx) => {
      const session = await lockSession(sessionId, tx);
      const intent = session.payment_intent
        ? parse<PaymentIntent>(await repo.lock(session.payment_intent, 'payment_intent', tx))
        : undefined;
      if (session.status !== 'complete' || !intent || intent.status !== 'processing') return undefined;
      return settleLocked(session, intent, succeed, tx);
    });
  }

  async function expire(sessionId: string) {
    const { session, events } = await db.transaction(async (tx) => {
      const session = await lockSession(sessionId, tx);
      if (session.status !== 'open')
        throw new StripeApiError(
          400,
          'invalid_request_error',
          `Only Checkout Sessions with a status of open can be expired; this one is ${session.status}`,
        );
      session.status = 'expired';
      await saveSession(session, tx);
      const intent = session.payment_intent
        ? parse<PaymentIntent>(await repo.lock(session.payment_intent, 'payment_intent', tx))
        : undefined;
      if (intent) await savePaymentIntent({ ...intent, status: 'canceled' }, session.id, tx);
      return { session, events: [await recordEvent('checkout.session.expired', session, session.id, tx)] };
    });
    await deliverAll(events);
    return publicSession(session);
  }

  async function refund(form: Record<string, unknown>): Promise<Refund> {
    const id = text(form.payment_intent);
    const intent = parse<PaymentIntent>(await repo.find(id, 'payment_intent'));
    if (!intent) throw new StripeApiError(404, 'invalid_request_error', `No such payment_intent: '${id}'`);
    if (intent.status !== 'succeeded' && intent.status !== 'processing')
      throw new StripeApiError(400, 'invalid_request_error', `This PaymentIntent (${id}) does not have a successful charge to refund.`);
    const created: Refund = {
      id: newId('re'),
      object: 'refund',
      payment_intent: id,
      amount: intent.amount,
      currency: intent.currency,
      status: 'succeeded',
    };
    await repo.insert({ id: created.id, objectType: 'refund', relatedId: id, body: JSON.stringify(created) });
    return created;
  }

  async function api(method: string, path: string, form: Record<string, unknown>): Promise<unknown> {
    if (method === 'POST' && path === '/v1/checkout/sessions') return createSession(form);
    const sessionPath = /^\/v1\/checkout\/sessions\/([\w-]+)(\/expire)?$/.exec(path);
    if (sessionPath && method === 'GET' && !sessionPath[2]) {
      const session = parse<Session>(await repo.find(sessionPath[1]!, 'checkout.session'));
      if (!session) throw new StripeApiError(404, 'invalid_request_error', `No such checkout.session: '${sessionPath[1]}'`);
      return publicSession(session);
    }
    if (sessionPath && method === 'POST' && sessionPath[2]) return expire(sessionPath[1]!);
    const intentPath = /^\/v1\/payment_intents\/([\w-]+)$/.exec(path);
    if (intentPath && method === 'GET') {
      const intent = parse<PaymentIntent>(await repo.find(intentPath[1]!, 'payment_intent'));
      if (!intent) throw new StripeApiError(404, 'invalid_request_error', `No such payment_intent: '${intentPath[1]}'`);
      return intent;
    }
    if (method === 'POST' && path === '/v1/refunds') return refund(form);
    throw new StripeApiError(404, 'invalid_request_error', `Unrecognized request URL (${method}: ${path})`);
  }

  /** `debit`: the payment intent's status, which tells a processing bank debit from a failed one. */
  function payPage(reply: FastifyReply, session: Session, status: number, notice?: string, debit?: PaymentIntent['status']) {
    const amount = `${(session.amount_total / 100).toFixed(2)} ${session.currency.toUpperCase()}`;
    const origins = [session.success_url, session.cancel_url].flatMap((url) => {
      try {
        return [new URL(url).origin];
      } catch {
        return [];
      }
    });
    const bank = isBankDebit(session);
    const button = (outcome: PayOutcome, label: string) => `<button name="outcome" value="${outcome}">${label}</button> `;
    let body: string;
    if (session.status === 'open') {
      body =
        `<form method="post">` +
        (bank
          ? button('pay', 'Pay by bank (debit stays processing)') +
            button('ach_succeed', 'Pay by bank, debit clears') +
            button('ach_fail', 'Pay by bank, debit fails')
          : button('pay', 'Pay') + button('decline', 'Pay, card declined') + button('fail_3ds', 'Pay, 3-D Secure fails')) +
        `</form><p><a href="${escapeHtml(returnUrl(session.cancel_url || session.success_url, session))}">Cancel and go back</a></p>`;
    } else if (session.status === 'complete' && session.payment_status === 'unpaid' && debit !== 'processing') {
      body = `<p>The bank debit failed; no payment was taken. Start a new checkout to pay again.</p>`;
    } else if (session.status === 'complete' && session.payment_status === 'unpaid') {
      body =
        `<p>The bank debit is processing.</p><form method="post" action="${session.id}/settle">` +
        `<button name="outcome" value="pay">Debit clears</button> <button name="outcome" value="fail">Debit fails</button></form>`;
    } else body = `<p>This checkout is ${session.status}.</p>`;
    return reply
      .code(status)
      .header(
        'content-security-policy',
        `default-src 'none'; base-uri 'none'; form-action 'self' ${origins.join(' ')}; frame-ancestors 'none'`,
      )
      .type('text/html; charset=utf-8')
      .send(
        `<!doctype html><html lang="en"><meta charset="utf-8"><title>Test payment: ${escapeHtml(amount)}</title>` +
          `<h1>Test payment: ${escapeHtml(amount)}</h1><p>Stripe double: no money moves.</p>` +
          (notice ? `<p role="alert">${escapeHtml(notice)}</p>` : '') +
          body +
          `</html>`,
      );
  }

  async function routes(app: FastifyInstance) {
    server = app.server;
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => done(null, body));
    app.setErrorHandler((error: Error, request, reply) => {
      const status = error instanceof StripeApiError ? error.status : ((error as { statusCode?: number }).statusCode ?? 500);
      const type = error instanceof StripeApiError ? error.type : status < 500 ? 'invalid_request_error' : 'api_error';
      if (request.url.includes('/v1/')) return reply.code(status).send({ error: { type, message: error.message } });
      return reply.code(status).type('text/plain').send(error.message);
    });
    const hidden = { schema: { hide: true }, config: { idempotent: false } };

    app.all('/v1/*', hidden, async (request, reply) => {
      if (!/^Bearer sk_(test|live)_\w+/.test(request.headers.authorization ?? ''))
        throw new StripeApiError(401, 'invalid_request_error', 'Invalid API Key provided');
      const path = request.url.slice(STRIPE_DOUBLE_PREFIX.length).split('?')[0]!;
      const body = typeof request.body === 'string' ? request.body : '';
      const key = request.headers['idempotency-key'];
      const fingerprint = `${path}?${body}`;
      if (request.method === 'POST' && typeof key === 'string') {
        const seen = await repo.findIdempotent(key);
        if (seen && seen.request !== fingerprint)
          throw new StripeApiError(
            400,
            'idempotency_error',
            'Keys for idempotent requests can only be used with the same parameters they were first used with.',
          );
        if (seen) return reply.type('application/json').send(seen.response);
      }
      const result = JSON.stringify(await api(request.method, path, parseForm(body)));
      if (request.method === 'POST' && typeof key === 'string') await repo.saveIdempotent(key, fingerprint, result);
      return reply.type('application/json').send(result);
    });

    app.get<{ Params: { id: string } }>('/pay/:id', hidden, async (request, reply) => {
      const session = parse<Session>(await repo.find(request.params.id, 'checkout.session'));
      if (!session) return reply.code(404).type('text/plain').send('No such checkout');
      const intent = session.payment_intent ? parse<PaymentIntent>(await repo.find(session.payment_intent, 'payment_intent')) : undefined;
      return payPage(reply, session, 200, undefined, intent?.status);
    });

    app.post<{ Params: { id: string } }>('/pay/:id', hidden, async (request, reply) => {
      const requested = new URLSearchParams(typeof request.body === 'string' ? request.body : '').get('outcome') ?? 'pay';
      if (!(await repo.find(request.params.id, 'checkout.session'))) return reply.code(404).type('text/plain').send('No such checkout');
      if (!PAY_OUTCOMES.includes(requested as PayOutcome))
        return reply
          .code(400)
          .type('text/plain')
          .send(`outcome must be one of ${PAY_OUTCOMES.join(', ')}`);
      const { session, events, status, error } = await attempt(request.params.id, requested as PayOutcome);
      await deliverAll(events);
      if (error) return payPage(reply, publicSession(session), status, error);
      return reply.code(303).header('location', returnUrl(session.success_url, session)).send();
    });

    app.post<{ Params: { id: string } }>('/pay/:id/settle', hidden, async (request, reply) => {
      if (!(await repo.find(request.params.id, 'checkout.session'))) return reply.code(404).type('text/plain').send('No such checkout');
      const outcome = new URLSearchParams(typeof request.body === 'string' ? request.body : '').get('outcome') ?? 'pay';
      const events = await settle(request.params.id, outcome === 'pay');
      if (!events) return reply.code(409).type('text/plain').send('nothing to settle: no bank debit is processing');
      await deliverAll(events);
      return reply.type('text/plain').send('settled');
    });
  }

  return {
    webhookSecret: options.webhookSecret,
    /** The API root the SDK is pointed at: this process's own address plus the prefix. */
    apiBase: () => `${selfUrl()}${STRIPE_DOUBLE_PREFIX}`,
    routes,
    session: async (id: string) => parse<Session>(await repo.find(id, 'checkout.session')),
    paymentIntent: async (id: string) => parse<PaymentIntent>(await repo.find(id, 'payment_intent')),
    /** Every event sent, oldest first (`sessionId` narrows to one checkout). */
    sentEvents: async (sessionId?: string): Promise<SentEvent[]> =>
      (await repo.list('event', sessionId)).map((row) => ({
        id: row.id,
        type: (JSON.parse(row.body) as { type: string }).type,
        payload: row.body,
        sessionId: row.relatedId ?? '',
      })),
    refunds: async () => (await repo.list('refund')).map((row) => JSON.parse(row.body) as Refund),
    /** Sends an event again, as Stripe does when it retries; optionally with another signature header. */
    redeliver: (event: SentEvent, signatureHeader?: string) => deliver(event, signatureHeader),
  };
}

export type StripeDouble = ReturnType<typeof stripeDouble>;
