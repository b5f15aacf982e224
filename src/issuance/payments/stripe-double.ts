import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';

type Session = {
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
};

export type SentEvent = { id: string; type: string; payload: string; sessionId: string };

const newId = (prefix: string) => `${prefix}_test_${randomBytes(12).toString('base64url')}`;

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

/**
 * A local stand-in for Stripe's servers: the Checkout Session API the `stripe` SDK calls
 * (create with idempotency keys, retrieve, expire, refunds), a hosted pay page, and webhook events
 * signed like Stripe's. Card payments complete paid; us_bank_account completes unpaid and settles
 * later (async_payment_succeeded or _failed), as ACH does.
 */
export async function startStripeDouble(options: { webhookSecret: string; webhookUrl?: string; port?: number; host?: string }) {
  const sessions = new Map<string, Session>();
  const idempotent = new Map<string, { request: string; response: string }>();
  const sentEvents: SentEvent[] = [];
  const refunds: { id: string; payment_intent: string; amount: number }[] = [];
  let webhookUrl = options.webhookUrl;
  const signer = new Stripe('sk_test_double');

  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      handle(request, Buffer.concat(chunks).toString('utf8'))
        .then(({ status, body, type, location }) => {
          response.writeHead(status, { 'content-type': type ?? 'application/json', ...(location ? { location } : {}) });
          response.end(body);
        })
        .catch((error: Error) => {
          response.writeHead(500, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ error: { type: 'api_error', message: error.message } }));
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const baseUrl = `http://${options.host ?? '127.0.0.1'}:${port}`;

  const json = (status: number, body: unknown) => ({ status, body: JSON.stringify(body) });
  const stripeError = (status: number, type: string, message: string) => json(status, { error: { type, message } });

  async function sendEvent(type: string, session: Session): Promise<SentEvent> {
    const event = {
      id: newId('evt'),
      object: 'event',
      api_version: '2026-10-28.endive',
      created: Math.floor(Date.now() / 1000),
      type,
      livemode: false,
      data: { object: session },
    };
    const payload = JSON.stringify(event);
    const sent = { id: event.id, type, payload, sessionId: session.id };
    sentEvents.push(sent);
    await deliver(sent);
    return sent;
  }

  async function deliver(event: SentEvent, signatureHeader?: string) {
    if (!webhookUrl) return;
    const header = signatureHeader ?? signer.webhooks.generateTestHeaderString({ payload: event.payload, secret: options.webhookSecret });
    await fetch(webhookUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': header },
      body: event.payload,
    }).catch(() => undefined);
  }

  async function createSession(form: Record<string, unknown>): Promise<Session> {
    const item = asArray(form.line_items)[0] as { quantity?: string; price_data?: { currency?: string; unit_amount?: string } } | undefined;
    const amount = Number(item?.price_data?.unit_amount) * Number(item?.quantity ?? 1);
    if (!Number.isInteger(amount) || amount <= 0)
      throw Object.assign(new Error('line_items[0][price_data][unit_amount] must be a positive integer'), { status: 400 });
    const id = newId('cs');
    const session: Session = {
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
      url: `${baseUrl}/pay/${id}`,
      created: Math.floor(Date.now() / 1000),
      expires_at: Math.floor(Date.now() / 1000) + 24 * 3600,
    };
    sessions.set(id, session);
    return session;
  }

  async function handle(
    request: http.IncomingMessage,
    body: string,
  ): Promise<{ status: number; body: string; type?: string; location?: string }> {
    const url = new URL(request.url ?? '/', baseUrl);
    const method = request.method ?? 'GET';
    if (url.pathname.startsWith('/v1/')) {
      if (!/^Bearer sk_(test|live)_\w+/.test(request.headers.authorization ?? ''))
        return stripeError(401, 'invalid_request_error', 'Invalid API Key provided');
      const key = request.headers['idempotency-key'];
      if (method === 'POST' && typeof key === 'string') {
        const seen = idempotent.get(key);
        if (seen && seen.request !== `${url.pathname}?${body}`) {
          return stripeError(
            400,
            'idempotency_error',
            'Keys for idempotent requests can only be used with the same parameters they were first used with.',
          );
        }
        if (seen) return { status: 200, body: seen.response };
      }
      const result = await handleApi(method, url.pathname, parseForm(body));
      if (method === 'POST' && typeof key === 'string' && result.status === 200)
        idempotent.set(key, { request: `${url.pathname}?${body}`, response: result.body });
      return result;
    }
    const pay = /^\/pay\/(cs_test_[\w-]+)(\/settle)?$/.exec(url.pathname);
    const session = pay ? sessions.get(pay[1]!) : undefined;
    if (!session) return { status: 404, body: 'not found', type: 'text/plain' };
    if (method === 'GET') {
      return {
        status: 200,
        type: 'text/html; charset=utf-8',
        body:
          `<!doctype html><title>Pay ${(session.amount_total / 100).toFixed(2)} ${session.currency.toUpperCase()}</title>` +
          `<h1>Test payment: ${(session.amount_total / 100).toFixed(2)} ${session.currency.toUpperCase()}</h1>` +
          `<form method="post"><button name="outcome" value="pay">Pay</button></form>`,
      };
    }
    const outcome = new URLSearchParams(body).get('outcome') ?? 'pay';
    if (pay![2]) {
      if (session.status !== 'complete' || session.payment_status === 'paid')
        return { status: 409, body: 'nothing to settle', type: 'text/plain' };
      if (outcome === 'pay') session.payment_status = 'paid';
      await sendEvent(outcome === 'pay' ? 'checkout.session.async_payment_succeeded' : 'checkout.session.async_payment_failed', session);
      return { status: 200, body: 'settled', type: 'text/plain' };
    }
    if (session.status !== 'open') return { status: 409, body: `session is ${session.status}`, type: 'text/plain' };
    session.status = 'complete';
    session.payment_intent = newId('pi');
    if (!session.allowed_payment_method_types.includes('us_bank_account')) session.payment_status = 'paid';
    await sendEvent('checkout.session.completed', session);
    return { status: 303, body: '', location: session.success_url };
  }

  async function handleApi(method: string, pathname: string, form: Record<string, unknown>) {
    try {
      if (method === 'POST' && pathname === '/v1/checkout/sessions') return json(200, await createSession(form));
      const sessionPath = /^\/v1\/checkout\/sessions\/([\w-]+)(\/expire)?$/.exec(pathname);
      if (sessionPath) {
        const session = sessions.get(sessionPath[1]!);
        if (!session) return stripeError(404, 'invalid_request_error', `No such checkout.session: '${sessionPath[1]}'`);
        if (method === 'GET' && !sessionPath[2]) return json(200, session);
        if (method === 'POST' && sessionPath[2]) {
          if (session.status !== 'open')
            return stripeError(
              400,
              'invalid_request_error',
              `Only Checkout Sessions with a status of open can be expired; this one is ${session.status}`,
            );
          session.status = 'expired';
          await sendEvent('checkout.session.expired', session);
          return json(200, session);
        }
      }
      if (method === 'POST' && pathname === '/v1/refunds') {
        const paymentIntent = text(form.payment_intent);
        const session = [...sessions.values()].find((candidate) => candidate.payment_intent === paymentIntent);
        if (!session) return stripeError(404, 'invalid_request_error', `No such payment_intent: '${paymentIntent}'`);
        const refund = {
          id: newId('re'),
          object: 'refund',
          payment_intent: paymentIntent,
          amount: session.amount_total,
          status: 'succeeded',
        };
        refunds.push(refund);
        return json(200, refund);
      }
      return stripeError(404, 'invalid_request_error', `Unrecognized request URL (${method}: ${pathname})`);
    } catch (error) {
      return stripeError((error as { status?: number }).status ?? 500, 'invalid_request_error', (error as Error).message);
    }
  }

  return {
    host: options.host ?? '127.0.0.1',
    port,
    webhookSecret: options.webhookSecret,
    baseUrl,
    sessions,
    sentEvents,
    refunds,
    setWebhookUrl(url: string) {
      webhookUrl = url;
    },
    /** Sends an event again, as Stripe does when it retries; optionally with another signature header. */
    redeliver: (event: SentEvent, signatureHeader?: string) => deliver(event, signatureHeader),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type StripeDouble = Awaited<ReturnType<typeof startStripeDouble>>;
