import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireUser } from '../../platform/auth/principal.ts';
import { toSnake } from '../../platform/http/case.ts';
import { receiveRawJson } from '../../platform/http/raw-body.ts';
import { envelope, ok } from '../../platform/http/envelope.ts';
import { errorResponses } from '../../platform/http/errors.ts';
import { CAPPED_TOTAL_NOTE, offsetPageMeta, offsetPageMetaFor, offsetPagingQuery } from '../../platform/http/paging.ts';
import {
  createKycBody,
  effectiveResponse,
  kycSessionResponse,
  listQuery,
  sanitizedVerification,
  sessionIdParams,
  verificationIdParams,
  verificationResponse,
} from './kyc.schemas.ts';
import type { KycService, KycVerification } from './kyc.service.ts';

const asSession = (v: KycVerification) => ({
  session_id: v.verificationId,
  user_id: v.userId,
  org_id: v.orgId,
  status: v.status,
  verification_url: v.requiredAction?.url ?? null,
  checks: v.checks,
  created_at: v.createdAt,
  updated_at: v.updatedAt,
  completed_at: v.completedAt,
});

export async function kycRoutes(app: FastifyInstance, options: { kyc: KycService; callbackPath: string }) {
  const { kyc } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = app.authenticate(['bearer']);
  const common = { tags: ['identity: kyc'], security: [{ bearer: [] }] };

  routes.post(
    '/kyc-verifications',
    {
      onRequest,
      // A retry after a crash mid-submission may run again: the interrupted verification is swept to `error`.
      config: { idempotentRerun: true },
      schema: {
        ...common,
        summary: 'Submit PII (upserted, encrypted) and start a KYC verification',
        body: createKycBody,
        response: { 201: envelope(verificationResponse), ...errorResponses(400, 401, 409) },
      },
    },
    async (request, reply) => reply.code(201).send(ok(toSnake(await kyc.create(requireUser(request), request.body)))),
  );

  routes.get(
    '/kyc-verifications/:id',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Get a KYC verification',
        params: verificationIdParams,
        response: { 200: envelope(verificationResponse), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => ok(toSnake(await kyc.get(requireUser(request), request.params.id))),
  );

  routes.get(
    '/kyc',
    {
      onRequest,
      schema: {
        ...common,
        summary: "The caller's effective KYC status (not_started if none)",
        response: { 200: envelope(effectiveResponse), ...errorResponses(401) },
      },
    },
    async (request) => {
      const user = requireUser(request);
      return ok(toSnake(await kyc.effective(user.orgId, user.userId)));
    },
  );

  routes.get(
    '/kyc-verifications',
    {
      onRequest,
      schema: {
        ...common,
        summary: "org_admin: the org's verifications, sanitized",
        description: `Newest first. ${CAPPED_TOTAL_NOTE}`,
        querystring: listQuery,
        response: {
          200: envelope(z.object({ items: z.array(sanitizedVerification), meta: offsetPageMeta })),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const { status, limit, offset } = request.query;
      const { items, ...count } = await kyc.listForOrg(requireUser(request), { status }, { limit, offset });
      return ok({
        items: items.map(({ requiredAction: _action, ...rest }) => toSnake(rest)),
        meta: offsetPageMetaFor({ limit, offset }, count),
      });
    },
  );

  routes.post(
    '/kyc-sessions',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Create a KYC session (older API; a KYC verification)',
        body: createKycBody,
        response: { 201: envelope(kycSessionResponse), ...errorResponses(400, 401, 409) },
      },
    },
    async (request, reply) => reply.code(201).send(ok(asSession(await kyc.create(requireUser(request), request.body)))),
  );

  routes.get(
    '/kyc-sessions/user',
    {
      onRequest,
      schema: {
        ...common,
        summary: "The caller's KYC sessions (older API), newest first",
        description: CAPPED_TOTAL_NOTE,
        querystring: offsetPagingQuery,
        response: { 200: envelope(z.object({ items: z.array(kycSessionResponse), meta: offsetPageMeta })), ...errorResponses(400, 401) },
      },
    },
    async (request) => {
      const { limit, offset } = request.query;
      const { items, ...count } = await kyc.listOwn(requireUser(request), { limit, offset });
      return ok({ items: items.map(asSession), meta: offsetPageMetaFor({ limit, offset }, count) });
    },
  );

  routes.get(
    '/kyc-sessions/:sessionId',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'A KYC session (older API)',
        params: sessionIdParams,
        response: { 200: envelope(kycSessionResponse), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => ok(asSession(await kyc.get(requireUser(request), request.params.sessionId))),
  );

  await app.register(async (callbacks) => {
    receiveRawJson(callbacks);
    callbacks.post(options.callbackPath, { config: { idempotent: false }, schema: { hide: true } }, async (request) => {
      await kyc.handleProviderCallback(request.headers, request.body as Buffer);
      return ok({ received: true });
    });
  });
}
