import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { envelope, ok } from './envelope.ts';
import { DATABASE_RETRY_AFTER_SECONDS, errorBody } from './errors.ts';
import { boundedCheck } from './health.ts';

export type ServiceDescription = {
  name: string;
  description: string;
  version: string;
  checkDatabase: () => Promise<void>;
  /** The health check answers 503 when the database has not answered within this long. */
  healthTimeoutMs: number;
};

const healthSchema = z.object({ status: z.enum(['ok', 'degraded']), checks: z.object({ database: z.enum(['ok', 'down']) }) });

/** `GET /<service>/` (service info) and `GET /<service>/health`, the same for every service. */
export function registerServiceInfo(app: FastifyInstance, service: ServiceDescription) {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const startedAt = new Date();
  const checkDatabase = boundedCheck(service.checkDatabase, service.healthTimeoutMs);
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
      await checkDatabase();
      return reply.send(ok(healthSchema.parse({ status: 'ok', checks: { database: 'ok' } })));
    } catch (error) {
      request.log.warn({ reason: (error as Error).message }, 'health check failed');
      reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
      return reply.code(503).send(errorBody('SERVICE_UNAVAILABLE', 'Database is unreachable', request.id));
    }
  });
}
