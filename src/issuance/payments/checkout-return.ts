import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config.ts';
import { AppError } from '../../platform/http/errors.ts';

/** Where our own hosted return pages live, under the issuance prefix. */
export const CHECKOUT_RETURN_PATHS = { success: '/payments/checkout/success', cancel: '/payments/checkout/cancelled' } as const;

export type CheckoutReturnPolicy = Config['checkoutReturn'];
export type CheckoutReturnUrls = { successUrl: string; cancelUrl: string };

/**
 * The URLs Stripe Checkout sends the investor's browser back to. The caller's own, when given,
 * must be https (http only in development mode) and, when CHECKOUT_RETURN_ORIGINS or the org's
 * allowed redirect origins (`orgOrigins`) name any, on one of those origins; absent, our hosted
 * confirmation pages, which need no token. The strings pass
 * through untouched, so Stripe's `{CHECKOUT_SESSION_ID}` placeholder survives. Throws
 * VALIDATION_ERROR naming the field.
 */
export function checkoutReturnUrls(
  requested: Partial<CheckoutReturnUrls>,
  policy: CheckoutReturnPolicy,
  publicUrl: string,
  orgOrigins: string[] = [],
): CheckoutReturnUrls {
  const origins = [...new Set([...policy.origins, ...orgOrigins])];
  const check = (field: keyof CheckoutReturnUrls, value: string) => {
    const url = new URL(value);
    const refuse = (message: string) => {
      throw new AppError('VALIDATION_ERROR', `${field} ${message}`, [{ field, message }]);
    };
    if (url.protocol !== 'https:' && !(policy.allowHttp && url.protocol === 'http:'))
      refuse(policy.allowHttp ? 'must be an http or https URL' : 'must be an https URL');
    if (url.username || url.password) refuse('must not carry credentials');
    if (origins.length > 0 && !origins.includes(url.origin))
      refuse(`must be on an allowed redirect origin of the org or of CHECKOUT_RETURN_ORIGINS: ${origins.join(', ')}`);
    return value;
  };
  return {
    successUrl: requested.successUrl
      ? check('successUrl', requested.successUrl)
      : `${publicUrl}/issuance${CHECKOUT_RETURN_PATHS.success}?session_id={CHECKOUT_SESSION_ID}`,
    cancelUrl: requested.cancelUrl
      ? check('cancelUrl', requested.cancelUrl)
      : `${publicUrl}/issuance${CHECKOUT_RETURN_PATHS.cancel}?session_id={CHECKOUT_SESSION_ID}`,
  };
}

const page = (title: string, text: string) =>
  `<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">` +
  `<title>${title}</title><h1>${title}</h1><p>${text}</p></html>`;

/** The default return pages: plain HTML a browser opens without a token, saying nothing about the subscription. */
export async function checkoutReturnRoutes(app: FastifyInstance) {
  app.get(CHECKOUT_RETURN_PATHS.success, { schema: { hide: true } }, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .send(
        page('Payment submitted', 'Thank you. Your payment was submitted; you will be told when it clears. You can close this window.'),
      ),
  );
  app.get(CHECKOUT_RETURN_PATHS.cancel, { schema: { hide: true } }, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .send(page('Payment cancelled', 'No payment was taken. You can close this window and start the payment again.')),
  );
}
