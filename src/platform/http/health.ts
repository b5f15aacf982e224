import fs from 'node:fs';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { migrationsFolder, queryRows, type Db } from '../db/database.ts';
import { isDatabaseUnavailable } from '../db/errors.ts';
import { envelope, ok } from './envelope.ts';
import { DATABASE_RETRY_AFTER_SECONDS, DATABASE_UNAVAILABLE_MESSAGE, errorBody, errorBodySchema } from './errors.ts';

export class CheckTimedOutError extends Error {}

/**
 * Runs `check` with an upper bound of `timeoutMs`, sharing one run among concurrent callers, so a
 * probe every second against a partitioned database holds at most one connection, not one per probe.
 * Rejects with `CheckTimedOutError` after `timeoutMs`; the check itself goes on in the background.
 */
export function boundedCheck<T>(check: () => Promise<T>, timeoutMs: number): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () => {
    running ??= check().finally(() => {
      running = undefined;
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new CheckTimedOutError(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([running, deadline]).finally(() => clearTimeout(timer));
  };
}

const appliedMigrationCount = (): number =>
  (JSON.parse(fs.readFileSync(path.join(migrationsFolder, 'meta/_journal.json'), 'utf8')) as { entries: unknown[] }).entries.length;

const readySchema = z.object({
  status: z.literal('ready'),
  checks: z.object({ database: z.literal('ok'), migrations: z.literal('ok') }),
});

/**
 * `GET /health/live`: the process is up (no I/O, for restarts). `GET /health/ready`: the database
 * answers and every migration this build ships is applied (for routing traffic), else 503 with
 * `DATABASE_UNAVAILABLE` or `MIGRATIONS_PENDING`. Both answer within `timeoutMs` whatever the database does.
 */
export async function healthRoutes(app: FastifyInstance, options: { db: Db; timeoutMs: number }) {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const expected = appliedMigrationCount();
  const check = boundedCheck(async () => {
    const [row] = await queryRows<{ applied: number }>(options.db, sql`select count(*)::int as applied from drizzle.__drizzle_migrations`);
    return Number(row?.applied ?? 0);
  }, options.timeoutMs);

  routes.get(
    '/health/live',
    {
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process is running',
        response: { 200: envelope(z.object({ status: z.literal('ok') })) },
      },
    },
    async () => ok({ status: 'ok' as const }),
  );

  routes.get(
    '/health/ready',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: the database answers and migrations are current',
        response: { 200: envelope(readySchema), 503: errorBodySchema },
      },
    },
    async (request, reply) => {
      let applied: number;
      try {
        applied = await check();
      } catch (error) {
        if (!(error instanceof CheckTimedOutError) && !isDatabaseUnavailable(error)) throw error;
        request.log.warn({ reason: (error as Error).message }, 'readiness: database unavailable');
        reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
        return reply.code(503).send(errorBody('DATABASE_UNAVAILABLE', DATABASE_UNAVAILABLE_MESSAGE, request.id));
      }
      if (applied < expected) {
        reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
        return reply
          .code(503)
          .send(errorBody('MIGRATIONS_PENDING', `${expected - applied} migration(s) not applied yet; run tranche migrate`, request.id));
      }
      return reply.send(ok({ status: 'ready' as const, checks: { database: 'ok' as const, migrations: 'ok' as const } }));
    },
  );
}
