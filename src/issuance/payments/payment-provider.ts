export type CheckoutRequest = {
  subscriptionId: string;
  amountCents: number;
  currency: string;
  paymentMethod: 'card' | 'us_bank_account';
  description: string;
  successUrl: string;
  cancelUrl: string;
  idempotencyKey: string;
};

export type CheckoutSession = { id: string; url: string; expiresAt: Date };

/** A provider's webhook event, reduced to what a subscription needs. */
export type PaymentEvent = {
  id: string;
  type:
    | 'checkout.session.completed'
    | 'checkout.session.async_payment_succeeded'
    | 'checkout.session.async_payment_failed'
    | 'checkout.session.expired';
  sessionId: string;
  subscriptionId: string | null;
  paymentStatus: 'paid' | 'unpaid' | 'no_payment_required';
  paymentIntentId: string | null;
  amountTotal: number | null;
};

/** Payments behind a small interface: Stripe Checkout in production and in the local double. */
export type PaymentProvider = {
  createCheckoutSession(request: CheckoutRequest): Promise<CheckoutSession>;
  expireCheckoutSession(sessionId: string): Promise<void>;
  refund(paymentIntentId: string, idempotencyKey: string): Promise<void>;
  /** Verifies the signature over the raw body; throws if it does not match or is stale. Null for event types we do not handle. */
  parseWebhook(rawBody: Buffer, signature: string): PaymentEvent | null;
};
