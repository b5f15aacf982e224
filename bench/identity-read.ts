import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import { and, eq } from 'drizzle-orm';
import Fastify from 'fastify';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { users } from '../src/identity/identity.tables.ts';
import { startBenchServer } from './support.ts';

export type BenchResult = { name: string; requestsPerSecond: number; p50Ms: number; p99Ms: number; errors: number };

async function load(
  name: string,
  url: string,
  headers: Record<string, string>,
  seconds: number,
  connections: number,
): Promise<BenchResult> {
  const result = await autocannon({ url, headers, duration: seconds, connections });
  const errors = result.errors + result.non2xx + result.timeouts;
  return { name, requestsPerSecond: result.requests.average, p50Ms: result.latency.p50, p99Ms: result.latency.p99, errors };
}

/**
 * `GET /identity/users/:id` through the whole stack (auth hook, zod validation and response
 * schema, envelope, idempotency and metrics hooks, logging) next to a bare Fastify route that does
 * the same RS256 verify and the same SELECT on the same database.
 */
export async function benchIdentityRead(options: { seconds: number; connections: number; databaseUrl?: string }) {
  const server = await startBenchServer({ databaseUrl: options.databaseUrl });
  const { database } = server;
  const appUrl = server.url;
  const { accessToken, userId } = await server.signIn('bench@example.com');

  const floor = Fastify();
  const jwks = createRemoteJWKSet(new URL(`${appUrl}/identity/.well-known/jwks.json`));
  floor.get<{ Params: { userId: string } }>('/users/:userId', async (request, reply) => {
    const token = request.headers.authorization?.slice(7) ?? '';
    const { payload } = await jwtVerify(token, jwks, { issuer: 'http://bench.local/identity', audience: 'tranche', algorithms: ['RS256'] });
    const [user] = await database.db
      .select()
      .from(users)
      .where(and(eq(users.orgId, payload.org_id as string), eq(users.id, request.params.userId)));
    if (!user) return reply.code(404).send({});
    return user;
  });
  await floor.listen({ port: 0, host: '127.0.0.1' });
  const floorUrl = `http://127.0.0.1:${(floor.server.address() as AddressInfo).port}`;

  const headers = { authorization: `Bearer ${accessToken}` };
  const warm = Math.max(1, Math.round(options.seconds / 4));
  await load('warm-up', `${floorUrl}/users/${userId}`, headers, warm, options.connections);
  await load('warm-up', `${appUrl}/identity/users/${userId}`, headers, warm, options.connections);
  const bare = await load('bare route (verify + SELECT)', `${floorUrl}/users/${userId}`, headers, options.seconds, options.connections);
  const full = await load('GET /identity/users/:id', `${appUrl}/identity/users/${userId}`, headers, options.seconds, options.connections);

  await floor.close();
  await server.close();
  return { database: database.kind, bare, full, ratio: full.requestsPerSecond / bare.requestsPerSecond };
}
