import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Identity } from '../identity/identity.module.ts';
import { toSnake } from '../platform/http/case.ts';
import { envelope, ok } from '../platform/http/envelope.ts';
import { AppError, errorResponses } from '../platform/http/errors.ts';
import { CAPPED_TOTAL_NOTE, offsetPageMeta, offsetPageMetaFor, offsetPagingQuery } from '../platform/http/paging.ts';
import type { Keyring } from '../platform/crypto/keyring.ts';
import type { Db } from '../platform/db/database.ts';
import { MAIL_STATUSES, readOutbox } from '../platform/mail/mailer.ts';
import { requireReviewer, reviewerAuth } from './reviewer.ts';

const mailResponse = z.object({
  id: z.uuid(),
  recipient: z.string().nullable().describe('null (with subject and body) when the mail was sealed under a key this server does not have'),
  subject: z.string().nullable(),
  body: z.string().nullable().describe('the text; null once the mail was sent or failed (it held links and codes)'),
  created_at: z.date(),
  status: z.enum(MAIL_STATUSES).describe('kept (no SMTP server), pending (to be sent), sent, or failed (refused, or retries used up)'),
  attempts: z.int().describe('SMTP attempts made'),
  next_attempt_at: z.date().nullable().describe('when a pending mail is tried next'),
  sent_at: z.date().nullable(),
  last_error: z
    .string()
    .nullable()
    .describe(
      'why the last attempt failed: the SMTP command and reply code or the socket error, e.g. EENVELOPE RCPT TO 550, ESOCKET CONN ECONNREFUSED',
    ),
});

/**
 * The mail outbox: every mail the key server queued (verification links, codes, invites), kept
 * when no SMTP server is configured, else pending, sent or failed with its attempts. It spans
 * every tenant, so only a platform admin key reads it; it is sealed at rest and opened here.
 */
export async function mailAdminRoutes(app: FastifyInstance, options: { identity: Identity; db: Db; keyring: Keyring }) {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = reviewerAuth(app, options.identity);

  routes.get(
    '/mail',
    {
      onRequest,
      schema: {
        tags: ['admin: mail'],
        security: [{ adminKey: [] }],
        summary: 'The mail outbox, newest first: mail kept (SMTP_URL unset), pending, sent or failed',
        description: CAPPED_TOTAL_NOTE,
        querystring: offsetPagingQuery.extend({
          to: z.email().max(254).toLowerCase().optional(),
          status: z.enum(MAIL_STATUSES).optional(),
        }),
        response: {
          200: envelope(z.object({ items: z.array(mailResponse), meta: offsetPageMeta })),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      if (requireReviewer(request).kind !== 'platform_admin') throw new AppError('FORBIDDEN', 'The mail outbox needs a platform admin key');
      const { to, status, limit, offset } = request.query;
      const { items, ...count } = await readOutbox(options.db, options.keyring, { to, status, limit, offset });
      return ok({ items: toSnake(items), meta: offsetPageMetaFor({ limit, offset }, count) });
    },
  );
}
