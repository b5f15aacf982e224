import { randomBytes } from 'node:crypto';
import type { Config } from '../../config.ts';
import type { Db } from '../../platform/db/database.ts';
import type { PaymentProvider } from './payment-provider.ts';
import { stripeDouble, type StripeDouble } from './stripe-double.ts';
import { stripeProvider } from './stripe.provider.ts';

export const STRIPE_WEBHOOK_PATH = '/issuance/payments/stripe/webhook';

export type Payments = { provider: PaymentProvider; double?: StripeDouble };

/**
 * Stripe when configured; otherwise the local double, served by this server under /stripe-double
 * with its state in the database, so the embedded default runs the real SDK code path with no
 * Stripe account. The SDK reaches the double over HTTP on this process's own address.
 */
export function createPayments(config: Pick<Config, 'stripe' | 'publicUrl'>, db: Db): Payments {
  if (config.stripe) {
    const provider = stripeProvider({
      secretKey: config.stripe.secretKey,
      webhookSecret: config.stripe.webhookSecret,
      apiBase: config.stripe.apiBase,
    });
    return { provider };
  }
  const webhookSecret = `whsec_${randomBytes(24).toString('base64')}`;
  const secretKey = `sk_test_${randomBytes(12).toString('hex')}`;
  const double = stripeDouble({ db, webhookSecret, publicUrl: config.publicUrl, webhookPath: STRIPE_WEBHOOK_PATH });
  let connected: PaymentProvider | undefined;
  // The server's address is known once it listens, so the SDK client is made on first use.
  const connect = () => (connected ??= stripeProvider({ secretKey, webhookSecret, apiBase: double.apiBase() }));
  const offline = stripeProvider({ secretKey, webhookSecret });
  const provider: PaymentProvider = {
    createCheckoutSession: (request) => connect().createCheckoutSession(request),
    expireCheckoutSession: (sessionId) => connect().expireCheckoutSession(sessionId),
    refund: (paymentIntentId, key) => connect().refund(paymentIntentId, key),
    parseWebhook: (rawBody, signature) => offline.parseWebhook(rawBody, signature),
  };
  return { provider, double };
}
