import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requireUser } from '../../platform/auth/principal.ts';
import { toSnake } from '../../platform/http/case.ts';
import { envelope, ok } from '../../platform/http/envelope.ts';
import { errorResponses } from '../../platform/http/errors.ts';
import { offsetPageMeta, offsetPageMetaFor, offsetPagingQuery } from '../../platform/http/paging.ts';
import { MAX_UPLOAD_BYTES } from '../../platform/storage/storage.ts';
import {
  accreditationResponse,
  accreditationSessionResponse,
  base64DocumentBody,
  documentIdParams,
  documentRequestBody,
  documentResponse,
  sessionIdParams,
  submitBody,
  uploadResponse,
} from './accreditation.schemas.ts';
import type { Accreditation, AccreditationService } from './accreditation.service.ts';

const asSession = ({ id, ...rest }: Accreditation) => ({ sessionId: id, ...rest });

export async function accreditationRoutes(app: FastifyInstance, options: { accreditation: AccreditationService }) {
  const { accreditation } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = app.authenticate(['bearer']);
  const common = { tags: ['identity: accreditation'], security: [{ bearer: [] }] };

  routes.get(
    '/accreditations',
    {
      onRequest,
      schema: {
        ...common,
        summary: "The caller's accreditation (created pending on first call)",
        response: { 200: envelope(accreditationResponse), ...errorResponses(401) },
      },
    },
    async (request) => ok(toSnake(await accreditation.get(requireUser(request)))),
  );

  routes.put(
    '/accreditations',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Self-certify',
        body: submitBody,
        response: { 200: envelope(accreditationResponse), ...errorResponses(400, 401, 409) },
      },
    },
    async (request) => ok(toSnake(await accreditation.submit(requireUser(request), request.body))),
  );

  routes.post(
    '/accreditations/documents',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Request a presigned upload URL for a supporting document',
        body: documentRequestBody,
        response: { 201: envelope(uploadResponse), ...errorResponses(400, 401, 409) },
      },
    },
    async (request, reply) => reply.code(201).send(ok(toSnake(await accreditation.requestUpload(requireUser(request), request.body)))),
  );

  routes.post(
    '/accreditations/documents/:id/upload',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Finalize an upload (HEAD-checks the object)',
        params: documentIdParams,
        response: { 200: envelope(documentResponse), ...errorResponses(400, 401, 404, 409, 422) },
      },
    },
    async (request) => ok(toSnake(await accreditation.finalizeUpload(requireUser(request), request.params.id))),
  );

  routes.post(
    '/accreditation-sessions',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Create an accreditation session (older API; self-certification)',
        body: submitBody,
        response: { 201: envelope(accreditationSessionResponse), ...errorResponses(400, 401, 409) },
      },
    },
    async (request, reply) => reply.code(201).send(ok(toSnake(asSession(await accreditation.submit(requireUser(request), request.body))))),
  );

  routes.get(
    '/accreditation-sessions/user',
    {
      onRequest,
      schema: {
        ...common,
        summary: "The caller's accreditation sessions (older API): the one record per user and org",
        querystring: offsetPagingQuery,
        response: {
          200: envelope(z.object({ items: z.array(accreditationSessionResponse), meta: offsetPageMeta })),
          ...errorResponses(400, 401),
        },
      },
    },
    async (request) => {
      const { limit, offset } = request.query;
      const record = toSnake(asSession(await accreditation.get(requireUser(request))));
      return ok({
        items: offset === 0 ? [record] : [],
        meta: offsetPageMetaFor({ limit, offset }, { total: 1, totalCapped: false, hasMore: false }),
      });
    },
  );

  routes.get(
    '/accreditation-sessions/:sessionId',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'An accreditation session (older API)',
        params: sessionIdParams,
        response: { 200: envelope(accreditationSessionResponse), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => ok(toSnake(asSession(await accreditation.getById(requireUser(request), request.params.sessionId)))),
  );

  routes.post(
    '/accreditation-sessions/:sessionId/documents',
    {
      onRequest,
      bodyLimit: Math.ceil((MAX_UPLOAD_BYTES * 4) / 3) + 64 * 1024,
      schema: {
        ...common,
        summary: 'Upload a supporting document as base64 (older API)',
        params: sessionIdParams,
        body: base64DocumentBody,
        response: { 201: envelope(documentResponse), ...errorResponses(400, 401, 404, 409, 413) },
      },
    },
    async (request, reply) =>
      reply.code(201).send(ok(toSnake(await accreditation.uploadBase64(requireUser(request), request.params.sessionId, request.body)))),
  );
}
