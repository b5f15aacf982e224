import type { AddressInfo } from 'node:net';
import { and, eq } from 'drizzle-orm';
import Fastify from 'fastify';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { users } from '../src/identity/identity.tables.ts';
import { load, startBenchServer } from './support.ts';

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
  await load('warm-up', { url: `${floorUrl}/users/${userId}`, headers, duration: warm, connections: options.connections });
  await load('warm-up', { url: `${appUrl}/identity/users/${userId}`, headers, duration: warm, connections: options.connections });
  const bare = await load('bare route (verify + SELECT)', {
    url: `${floorUrl}/users/${userId}`,
    headers,
    duration: options.seconds,
    connections: options.connections,
  });
  const full = await load('GET /identity/users/:id', {
    url: `${appUrl}/identity/users/${userId}`,
    headers,
    duration: options.seconds,
    connections: options.connections,
  });

  await floor.close();
  await server.close();
  return { database: database.kind, bare, full, ratio: full.requestsPerSecond / bare.requestsPerSecond };
}
