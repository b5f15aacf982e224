import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { envelope, ok } from './envelope.ts';
import { errorBody } from './errors.ts';

export type ServiceDescription = { name: string; description: string; version: string; checkDatabase: () => Promise<void> };

const healthSchema = z.object({ status: z.enum(['ok', 'degraded']), checks: z.object({ database: z.enum(['ok', 'down']) }) });

/** `GET /<service>/` (service info) and `GET /<service>/health`, the same for every service. */
export function registerServiceInfo(app: FastifyInstance, service: ServiceDescription) {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const startedAt = new Date();
  routes.get(
    '/',
    {
      schema: {
        tags: [service.name],
        summary: 'Service info',
        response: {
          200: envelope(
            z.object({ service: z.string(), description: z.string(), version: z.string(), started_at: z.string(), docs_url: z.string() }),
          ),
        },
      },
    },
    async () =>
      ok({
        service: service.name,
        description: service.description,
        version: service.version,
        started_at: startedAt.toISOString(),
        docs_url: '/docs',
      }),
  );
  routes.get('/health', { schema: { tags: [service.name], summary: 'Health check' } }, async (request, reply) => {
    try {
      await service.checkDatabase();
      return reply.send(ok(healthSchema.parse({ status: 'ok', checks: { database: 'ok' } })));
    } catch (error) {
      request.log.error({ err: error }, 'health check failed');
      return reply.code(503).send(errorBody('SERVICE_UNAVAILABLE', 'Database is unreachable', request.id));
    }
  });
}
