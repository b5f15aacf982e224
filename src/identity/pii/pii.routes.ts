import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { requirePrincipal } from '../../platform/auth/principal.ts';
import { toSnake } from '../../platform/http/case.ts';
import { envelope, ok } from '../../platform/http/envelope.ts';
import { errorResponses } from '../../platform/http/errors.ts';
import { deletedResponse, userIdParams } from '../users/users.schemas.ts';
import { createPiiBody, piiResponse, updatePiiBody } from './pii.schemas.ts';
import type { PiiService } from './pii.service.ts';

export async function piiRoutes(app: FastifyInstance, options: { pii: PiiService }) {
  const { pii } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = app.authenticate(['bearer']);
  const common = { tags: ['identity'], security: [{ bearer: [] }] };

  routes.post(
    '/user-pii',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Create the encrypted PII record of the caller (or, for an org_admin, of `userId`)',
        body: createPiiBody,
        response: { 201: envelope(piiResponse), ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request, reply) => {
      const { userId, ...record } = request.body;
      const created = await pii.create(requirePrincipal(request), userId, record);
      return reply.code(201).send(ok(toSnake(created)));
    },
  );

  routes.get(
    '/user-pii/:userId',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Get decrypted PII, SSN masked',
        params: userIdParams,
        response: { 200: envelope(piiResponse), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => ok(toSnake(await pii.get(requirePrincipal(request), request.params.userId))),
  );

  routes.patch(
    '/user-pii/:userId',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Update PII fields',
        params: userIdParams,
        body: updatePiiBody,
        response: { 200: envelope(piiResponse), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => ok(toSnake(await pii.update(requirePrincipal(request), request.params.userId, request.body))),
  );

  routes.delete(
    '/user-pii/:userId',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Delete the PII record',
        params: userIdParams,
        response: { 200: envelope(deletedResponse), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      await pii.delete(requirePrincipal(request), request.params.userId);
      return ok({ id: request.params.userId, deleted: true as const });
    },
  );
}
