import type { FastifyInstance } from 'fastify';
import { JsonApiError } from '../jsonapi.ts';
import type { WalletsService } from './wallets.service.ts';

const page = (title: string, body: string) =>
  `<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${title}</title>` +
  `<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem"><h1>${title}</h1>${body}</body></html>`;

/** The wallet id and token in a verification link's payload (see `verificationLink`), or undefined. */
function decodePayload(payload: string): { walletId: string; token: string } | undefined {
  try {
    const decoded = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { meta?: { wallet_id?: unknown; token?: unknown } };
    const walletId = decoded.meta?.wallet_id;
    const token = decoded.meta?.token;
    if (typeof walletId !== 'string' || !/^[0-9a-f]{64}$/.test(walletId) || typeof token !== 'string' || token.length > 64)
      return undefined;
    return { walletId, token };
  } catch {
    return undefined;
  }
}

/**
 * The default target of the key server's verification links (`KEYSERVER_CLIENT_URL` unset:
 * `$PUBLIC_URL/verify/<payload>`). Opening the link shows a button; only submitting it confirms,
 * so mail scanners that prefetch links confirm nothing. A TokenD web client set as
 * `KEYSERVER_CLIENT_URL` does the same through `PUT /wallets/{id}/verification`.
 */
export async function verifyPageRoutes(app: FastifyInstance, options: { wallets: WalletsService }) {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, _body, done) => done(null, undefined));
  const invalid = page('Link not valid', '<p>This verification link is malformed. Open the latest link from your email.</p>');

  app.get<{ Params: { payload: string } }>('/verify/:payload', { schema: { hide: true } }, async (request, reply) => {
    reply.type('text/html; charset=utf-8');
    if (!decodePayload(request.params.payload)) return reply.code(400).send(invalid);
    return reply.send(
      page(
        'Confirm your email',
        '<p>Confirm the email address of your wallet.</p><form method="post"><button>Confirm email</button></form>',
      ),
    );
  });

  app.post<{ Params: { payload: string } }>(
    '/verify/:payload',
    { schema: { hide: true }, config: { idempotent: false } },
    async (request, reply) => {
      reply.type('text/html; charset=utf-8');
      const decoded = decodePayload(request.params.payload);
      if (!decoded) return reply.code(400).send(invalid);
      try {
        await options.wallets.verifyEmail(decoded.walletId, decoded.token);
      } catch (error) {
        if (!(error instanceof JsonApiError) || error.status >= 500) throw error;
        return reply
          .code(error.status)
          .send(page('Link not valid', '<p>This link has expired or was replaced by a newer one. Request a new verification email.</p>'));
      }
      return reply.send(page('Email confirmed', '<p>Your email address is confirmed. You can sign in now.</p>'));
    },
  );
}
