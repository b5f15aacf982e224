import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requirePrincipal } from '../../platform/auth/principal.ts';
import { toSnake } from '../../platform/http/case.ts';
import { envelope, ok } from '../../platform/http/envelope.ts';
import { errorResponses } from '../../platform/http/errors.ts';
import { CAPPED_TOTAL_NOTE, offsetPageMeta, offsetPageMetaFor, offsetPagingQuery } from '../../platform/http/paging.ts';
import { eventCatalog } from '../event-catalog.ts';
import {
  createEndpointBody,
  createdEndpointResponse,
  endpointIdParams,
  endpointResponse,
  recoverBody,
  rotateBody,
  subscriptionsBody,
  updateEndpointBody,
} from './endpoints.schemas.ts';
import type { EndpointsService } from './endpoints.service.ts';

const subscriptionsResponse = z.object({ id: z.uuid(), event_types: z.array(z.string()) });

export async function endpointsRoutes(app: FastifyInstance, options: { endpoints: EndpointsService }) {
  const { endpoints } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = app.authenticate(['bearer', 'api_key']);
  const security: Record<string, string[]>[] = [{ bearer: [] }, { apiKey: [] }];
  const common = { tags: ['notifications'], security };
  const withId = { ...common, params: endpointIdParams };

  routes.post(
    '/webhooks',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Create a webhook endpoint (the signing secret is shown once)',
        body: createEndpointBody,
        response: { 201: envelope(createdEndpointResponse), ...errorResponses(400, 401, 403) },
      },
    },
    async (request, reply) => reply.code(201).send(ok(toSnake(await endpoints.create(requirePrincipal(request), request.body)))),
  );

  routes.get(
    '/webhooks',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'List webhook endpoints',
        description: `Newest first. ${CAPPED_TOTAL_NOTE}`,
        querystring: offsetPagingQuery,
        response: { 200: envelope(z.object({ items: z.array(endpointResponse), meta: offsetPageMeta })), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      const { items, ...count } = await endpoints.list(requirePrincipal(request), request.query);
      return ok({ items: toSnake(items), meta: offsetPageMetaFor(request.query, count) });
    },
  );

  routes.get(
    '/webhooks/:id',
    {
      onRequest,
      schema: {
        ...withId,
        summary: 'Get a webhook endpoint',
        response: { 200: envelope(endpointResponse), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => ok(toSnake(await endpoints.get(requirePrincipal(request), request.params.id))),
  );

  routes.patch(
    '/webhooks/:id',
    {
      onRequest,
      schema: {
        ...withId,
        summary: 'Update a webhook endpoint (status: active re-enables it)',
        body: updateEndpointBody,
        response: { 200: envelope(endpointResponse), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => ok(toSnake(await endpoints.update(requirePrincipal(request), request.params.id, request.body))),
  );

  routes.delete(
    '/webhooks/:id',
    {
      onRequest,
      schema: {
        ...withId,
        summary: 'Delete a webhook endpoint',
        response: { 200: envelope(z.object({ id: z.uuid(), deleted: z.literal(true) })), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      await endpoints.delete(requirePrincipal(request), request.params.id);
      return ok({ id: request.params.id, deleted: true as const });
    },
  );

  routes.post(
    '/webhooks/:id/rotate-secret',
    {
      onRequest,
      schema: {
        ...withId,
        summary: 'Rotate the signing secret; the old one keeps signing for the grace period (default 24 h)',
        body: rotateBody,
        response: {
          200: envelope(z.object({ id: z.uuid(), signing_secret: z.string(), previous_secret_expires_at: z.date() })),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request) =>
      ok(toSnake(await endpoints.rotateSecret(requirePrincipal(request), request.params.id, request.body?.gracePeriodSeconds))),
  );

  routes.post(
    '/webhooks/:id/test',
    {
      onRequest,
      schema: {
        ...withId,
        summary: 'Send a test.ping delivery',
        response: { 202: envelope(z.object({ delivery_id: z.uuid(), event_id: z.uuid() })), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => reply.code(202).send(ok(toSnake(await endpoints.sendTest(requirePrincipal(request), request.params.id)))),
  );

  routes.put(
    '/webhooks/:id/subscriptions',
    {
      onRequest,
      schema: {
        ...withId,
        summary: 'Set the event types (`*` for all)',
        body: subscriptionsBody,
        response: { 200: envelope(subscriptionsResponse), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => ok(toSnake(await endpoints.setSubscriptions(requirePrincipal(request), request.params.id, request.body.eventTypes))),
  );

  routes.get(
    '/webhooks/:id/subscriptions',
    {
      onRequest,
      schema: {
        ...withId,
        summary: 'Get the event types',
        response: { 200: envelope(subscriptionsResponse), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => ok(toSnake(await endpoints.subscriptions(requirePrincipal(request), request.params.id))),
  );

  routes.post(
    '/webhooks/:id/recover',
    {
      onRequest,
      schema: {
        ...withId,
        summary: 'Re-send failed deliveries since a time (at most 14 days back)',
        body: recoverBody,
        response: { 202: envelope(z.object({ id: z.uuid(), recovered: z.number() })), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) =>
      reply.code(202).send(ok(await endpoints.recover(requirePrincipal(request), request.params.id, new Date(request.body.since)))),
  );

  routes.get(
    '/event-types',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'Event types with a description and an example payload',
        response: {
          200: envelope(z.array(z.object({ type: z.string(), description: z.string(), example: z.record(z.string(), z.unknown()) }))),
          ...errorResponses(401),
        },
      },
    },
    async () =>
      ok(
        Object.entries(eventCatalog).map(([type, entry]) => ({
          type,
          description: entry.description,
          example: { id: '0b8f…', type, created_at: '2026-03-15T10:30:00.000Z', org_id: '550e8400-…', data: entry.example },
        })),
      ),
  );
}
