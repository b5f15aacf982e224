import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { requirePrincipal } from '../../platform/auth/principal.ts';
import { toSnake } from '../../platform/http/case.ts';
import { envelope, ok } from '../../platform/http/envelope.ts';
import { errorResponses, notFound } from '../../platform/http/errors.ts';
import { CAPPED_TOTAL_NOTE, cursorPageMeta, cursorPageMetaFor, cursorPagingQuery } from '../../platform/http/paging.ts';
import type { Dispatcher } from '../dispatcher.ts';
import { assertManager } from '../endpoints/endpoints.service.ts';
import type { DeliveriesRepo, DeliveryRow } from './deliveries.repo.ts';
import { isoDateTime } from '../../platform/http/times.ts';

const deliveryStatus = z
  .enum(['pending', 'sending', 'succeeded', 'exhausted', 'cancelled', 'skipped'])
  .describe(
    'skipped: the event happened while the endpoint was disabled; cancelled: it was queued when the endpoint was disabled. Recover sends both, and exhausted ones, again.',
  );
const attemptResponse = z.object({
  id: z.uuid(),
  attempt_number: z.number(),
  trigger: z.enum(['scheduled', 'manual']),
  url: z.string(),
  status_code: z.number().nullable(),
  duration_ms: z.number(),
  response_excerpt: z.string().nullable(),
  error_kind: z
    .enum(['timeout', 'dns', 'connect', 'tls', 'http', 'blocked', 'interrupted', 'secret'])
    .nullable()
    .describe(
      'interrupted: the worker shut down before the endpoint answered; the delivery is due again at once. ' +
        'secret: not sent, a signing secret of the endpoint cannot be unsealed (its master key left the keyring); retried on the schedule',
    ),
  error_message: z.string().nullable(),
  created_at: z.date(),
});
const deliveryResponse = z.object({
  id: z.uuid(),
  endpoint_id: z.uuid(),
  event_id: z.uuid(),
  event_type: z.string(),
  status: deliveryStatus,
  attempt_count: z.number(),
  next_attempt_at: z.date().nullable(),
  last_status_code: z.number().nullable(),
  last_error: z.string().nullable(),
  succeeded_at: z.date().nullable(),
  created_at: z.date(),
  updated_at: z.date(),
});

const present = ({ orgId: _org, leaseUntil: _lease, ...delivery }: DeliveryRow) => toSnake(delivery);

export async function deliveriesRoutes(app: FastifyInstance, options: { deliveries: DeliveriesRepo; dispatcher: Dispatcher }) {
  const { deliveries, dispatcher } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const onRequest = app.authenticate(['bearer', 'api_key']);
  const security: Record<string, string[]>[] = [{ bearer: [] }, { apiKey: [] }];
  const common = { tags: ['notifications'], security };
  const idParams = z.object({ id: z.uuid() });

  routes.get(
    '/deliveries',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'List deliveries (filter by endpoint, event type, status, time range)',
        description:
          'Newest first. Page with `cursor` (the `next_cursor` of the previous page: cost does not grow with depth, and new deliveries do not shift pages) or with `offset`. ' +
          CAPPED_TOTAL_NOTE,
        querystring: cursorPagingQuery.extend({
          endpoint_id: z.uuid().optional(),
          event_type: z.string().max(100).optional(),
          status: deliveryStatus.optional(),
          from: isoDateTime().optional(),
          to: isoDateTime().optional(),
        }),
        response: {
          200: envelope(
            z.object({
              items: z.array(deliveryResponse),
              meta: cursorPageMeta,
            }),
          ),
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      assertManager(principal);
      const q = request.query;
      const page = await deliveries.list(
        {
          orgId: principal.orgId,
          endpointId: q.endpoint_id,
          eventType: q.event_type,
          status: q.status,
          from: q.from ? new Date(q.from) : undefined,
          to: q.to ? new Date(q.to) : undefined,
        },
        { limit: q.limit, offset: q.offset, after: q.cursor },
      );
      return ok({
        items: page.rows.map(present),
        meta: cursorPageMetaFor(
          q,
          page.rows.map((row) => row.id),
          page,
        ),
      });
    },
  );

  routes.get(
    '/deliveries/:id',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'A delivery with every attempt',
        params: idParams,
        response: { 200: envelope(deliveryResponse.extend({ attempts: z.array(attemptResponse) })), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      assertManager(principal);
      const delivery = await deliveries.find(principal.orgId, request.params.id);
      if (!delivery) throw notFound('delivery');
      const attempts = await deliveries.attempts(delivery.id);
      return ok({ ...present(delivery), attempts: attempts.map(({ deliveryId: _d, ...attempt }) => toSnake(attempt)) });
    },
  );

  routes.post(
    '/deliveries/:id/retry',
    {
      onRequest,
      schema: {
        ...common,
        summary: 'A manual attempt now (the retry schedule is not restarted)',
        params: idParams,
        response: { 200: envelope(attemptResponse), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      assertManager(principal);
      const delivery = await deliveries.find(principal.orgId, request.params.id);
      if (!delivery) throw notFound('delivery');
      const made = await dispatcher.attemptManually(delivery);
      const { deliveryId: _d, ...attempt } = (await deliveries.attempts(delivery.id)).find((entry) => entry.id === made.id)!;
      return ok(toSnake(attempt));
    },
  );
}
