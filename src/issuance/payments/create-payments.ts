import { randomBytes } from 'node:crypto';
import type { Config } from '../../config.ts';
import type { PaymentProvider } from './payment-provider.ts';
import { startStripeDouble, type StripeDouble } from './stripe-double.ts';
import { stripeProvider } from './stripe.provider.ts';

export const STRIPE_WEBHOOK_PATH = '/issuance/payments/stripe/webhook';

export type Payments = { provider: PaymentProvider; double?: () => Promise<StripeDouble>; close(): Promise<void> };

/**
 * Stripe when configured; otherwise the local double, started on first use, so the embedded
 * default runs the real SDK code path with no Stripe account.
 */
export function createPayments(config: Pick<Config, 'stripe' | 'stripeDoublePort' | 'publicUrl'>): Payments {
  if (config.stripe) {
    const base = config.stripe.apiBase ? new URL(config.stripe.apiBase) : undefined;
    const provider = stripeProvider({
      secretKey: config.stripe.secretKey,
      webhookSecret: config.stripe.webhookSecret,
      ...(base
        ? {
            host: base.hostname,
            port: Number(base.port || (base.protocol === 'https:' ? 443 : 80)),
            protocol: base.protocol === 'https:' ? ('https' as const) : ('http' as const),
          }
        : {}),
    });
    return { provider, close: async () => undefined };
  }
  const webhookSecret = `whsec_${randomBytes(24).toString('base64')}`;
  const secretKey = `sk_test_${randomBytes(12).toString('hex')}`;
  let double: Promise<StripeDouble> | undefined;
  let connected: Promise<PaymentProvider> | undefined;
  const started = () =>
    (double ??= startStripeDouble({
      webhookSecret,
      webhookUrl: `${config.publicUrl}${STRIPE_WEBHOOK_PATH}`,
      port: config.stripeDoublePort,
    }));
  const connect = () =>
    (connected ??= started().then((running) =>
      stripeProvider({ secretKey, webhookSecret, host: running.host, port: running.port, protocol: 'http' }),
    ));
  const offline = stripeProvider({ secretKey, webhookSecret });
  const provider: PaymentProvider = {
    createCheckoutSession: async (request) => (await connect()).createCheckoutSession(request),
    expireCheckoutSession: async (sessionId) => (await connect()).expireCheckoutSession(sessionId),
    refund: async (paymentIntentId, key) => (await connect()).refund(paymentIntentId, key),
    parseWebhook: (rawBody, signature) => offline.parseWebhook(rawBody, signature),
  };
  return { provider, double: started, close: async () => (double ? (await double).close() : undefined) };
}
