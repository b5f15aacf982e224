import Stripe from 'stripe';
import type { PaymentEvent, PaymentProvider } from './payment-provider.ts';

/** `apiBase`: another Stripe API root, such as the local double (`http://127.0.0.1:3000/stripe-double`); a path is kept. */
export type StripeOptions = { secretKey: string; webhookSecret: string; apiBase?: string };

const HANDLED = new Set<string>([
  'checkout.session.completed',
  'checkout.session.async_payment_succeeded',
  'checkout.session.async_payment_failed',
  'checkout.session.expired',
]);

/**
 * The official SDK client, pointed at `apiBase` when given. The SDK knows a host, port and protocol
 * but no path, so a base with a path (the double under /stripe-double) gets an HTTP client that
 * prefixes every request path.
 */
export function stripeClient(secretKey: string, apiBase?: string): Stripe {
  const base = apiBase ? new URL(apiBase) : undefined;
  const prefix = base ? base.pathname.replace(/\/$/, '') : '';
  const httpClient = Stripe.createNodeHttpClient();
  if (prefix) {
    const inner = Stripe.createNodeHttpClient();
    httpClient.makeRequest = (host, port, path, ...rest) => inner.makeRequest(host, port, `${prefix}${path}`, ...rest);
  }
  return new Stripe(secretKey, {
    maxNetworkRetries: 2,
    timeout: 15_000,
    httpClient,
    ...(base
      ? {
          host: base.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: Number(base.port || (base.protocol === 'https:' ? 443 : 80)),
          protocol: base.protocol === 'https:' ? ('https' as const) : ('http' as const),
        }
      : {}),
  });
}

/** Stripe Checkout through the official SDK; `apiBase` points it at the local double. Amounts in cents. */
export function stripeProvider(options: StripeOptions): PaymentProvider {
  const stripe = stripeClient(options.secretKey, options.apiBase);

  return {
    async createCheckoutSession(request) {
      const metadata = { subscription_id: request.subscriptionId };
      const session = await stripe.checkout.sessions.create(
        {
          mode: 'payment',
          allowed_payment_method_types: [request.paymentMethod],
          line_items: [
            {
              quantity: 1,
              price_data: {
                currency: request.currency.toLowerCase(),
                unit_amount: request.amountCents,
                product_data: { name: request.description },
              },
            },
          ],
          client_reference_id: request.subscriptionId,
          metadata,
          payment_intent_data: { metadata },
          success_url: request.successUrl,
          cancel_url: request.cancelUrl,
        },
        { idempotencyKey: request.idempotencyKey },
      );
      return { id: session.id, url: session.url ?? '', expiresAt: new Date(session.expires_at * 1000) };
    },

    async expireCheckoutSession(sessionId) {
      await stripe.checkout.sessions.expire(sessionId);
    },

    async refund(paymentIntentId, idempotencyKey) {
      await stripe.refunds.create({ payment_intent: paymentIntentId }, { idempotencyKey });
    },

    parseWebhook(rawBody, signature) {
      const event = stripe.webhooks.constructEvent(rawBody, signature, options.webhookSecret);
      if (!HANDLED.has(event.type)) return null;
      const session = event.data.object as Stripe.Checkout.Session;
      return {
        id: event.id,
        type: event.type as PaymentEvent['type'],
        sessionId: session.id,
        subscriptionId: session.metadata?.subscription_id ?? session.client_reference_id ?? null,
        paymentStatus:
          session.payment_status === 'paid' ? 'paid' : session.payment_status === 'no_payment_required' ? 'no_payment_required' : 'unpaid',
        paymentIntentId: typeof session.payment_intent === 'string' ? session.payment_intent : (session.payment_intent?.id ?? null),
        amountTotal: session.amount_total,
      };
    },
  };
}
