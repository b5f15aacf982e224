import Stripe from 'stripe';
import type { PaymentEvent, PaymentProvider } from './payment-provider.ts';

export type StripeOptions = { secretKey: string; webhookSecret: string; host?: string; port?: number; protocol?: 'http' | 'https' };

const HANDLED = new Set<string>([
  'checkout.session.completed',
  'checkout.session.async_payment_succeeded',
  'checkout.session.async_payment_failed',
  'checkout.session.expired',
]);

/** Stripe Checkout through the official SDK; `host`/`port`/`protocol` point it at the local double. */
export function stripeProvider(options: StripeOptions): PaymentProvider {
  const stripe = new Stripe(options.secretKey, {
    maxNetworkRetries: 2,
    timeout: 15_000,
    ...(options.host ? { host: options.host } : {}),
    ...(options.port ? { port: options.port } : {}),
    ...(options.protocol ? { protocol: options.protocol } : {}),
  });

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
