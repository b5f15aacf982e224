import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { requirePrincipal } from '../../platform/auth/principal.ts';
import { toSnake } from '../../platform/http/case.ts';
import { envelope, ok } from '../../platform/http/envelope.ts';
import { errorResponses } from '../../platform/http/errors.ts';
import { deletedResponse, updateUserBody, userIdParams, userResponse } from './users.schemas.ts';
import type { UsersService } from './users.service.ts';

export async function usersRoutes(app: FastifyInstance, options: { users: UsersService }) {
  const { users } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const common = { tags: ['identity'], security: [{ bearer: [] }], params: userIdParams };
  const onRequest = app.authenticate(['bearer']);

  routes.get(
    '/users/:userId',
    {
      onRequest,
      schema: { ...common, summary: 'Get a user', response: { 200: envelope(userResponse), ...errorResponses(400, 401, 404) } },
    },
    async (request) => ok(toSnake(await users.get(requirePrincipal(request), request.params.userId))),
  );

  routes.patch(
    '/users/:userId',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Update a user (role changes need org_admin)',
        body: updateUserBody,
        response: { 200: envelope(userResponse), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => ok(toSnake(await users.update(requirePrincipal(request), request.params.userId, request.body))),
  );

  routes.delete(
    '/users/:userId',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Delete a user, their PII and their sessions',
        response: { 200: envelope(deletedResponse), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => {
      await users.delete(requirePrincipal(request), request.params.userId);
      return ok({ id: request.params.userId, deleted: true as const });
    },
  );
}
