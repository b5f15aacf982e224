import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { offeringsRepo } from '../src/issuance/offerings/offerings.repo.ts';
import { johnSmith } from '../test/support/fixtures.ts';
import { apiCaller, load, openBenchOffering, startBenchServer } from './support.ts';

/**
 * Offerings list (API key) and subscription create (Bearer) through the full stack, next to bare
 * Fastify routes that run the same SQL through the same repositories and service, without the
 * schemas, envelope, hooks and logging.
 */
export async function benchIssuance(options: { seconds: number; connections: number; databaseUrl?: string }) {
  const server = await startBenchServer({ databaseUrl: options.databaseUrl });
  const { database, modules, apiKey } = server;
  const appUrl = server.url;
  const signIn = async (email: string) => (await server.signIn(email)).accessToken;
  const call = apiCaller(appUrl);
  const admin = await signIn('admin@bench.example');
  const investor = await signIn('investor@bench.example');
  await call('POST', '/identity/kyc-verifications', investor, johnSmith);
  let offeringId = '';
  let securityId = '';
  for (let i = 0; i < 25; i++) {
    ({ offeringId, securityId } = await openBenchOffering(call, admin, { issuer: `Issuer ${i}`, offering: `Offering ${i}` }));
  }

  const floor = Fastify();
  const repo = offeringsRepo(database.db);
  floor.get('/offerings', async (request, reply) => {
    const principal = await modules.identity.orgs.authenticateApiKey(String(request.headers['x-api-key']));
    if (!principal) return reply.code(401).send({});
    const { rows, total } = await repo.list(
      { orgId: principal.orgId, includeDrafts: false },
      { by: 'created_at', order: 'desc' },
      { limit: 20, offset: 0 },
    );
    // The amounts and investor counts are running totals on the rows.
    const issuersById = await repo.issuersById(rows.map((row) => row.issuerId));
    return { rows: rows.map((row) => ({ ...row, issuer: issuersById.get(row.issuerId) })), total };
  });
  floor.post('/subscriptions', async (request, reply) => {
    const principal = await modules.identity.auth.verifyAccessToken(String(request.headers.authorization).slice(7));
    if (!principal) return reply.code(401).send({});
    return modules.issuance.subscriptions.create(
      principal,
      offeringId,
      request.body as Parameters<typeof modules.issuance.subscriptions.create>[2],
    );
  });
  await floor.listen({ port: 0, host: '127.0.0.1' });
  const floorUrl = `http://127.0.0.1:${(floor.server.address() as AddressInfo).port}`;

  const common = { duration: options.seconds, connections: options.connections };
  const body = JSON.stringify({
    securityClassId: securityId,
    unitsSubscribed: 1,
    paymentMethod: 'card',
    accreditationStatus: 'non_accredited',
    suitabilityConfirmed: true,
    riskAcknowledgmentSigned: true,
  });
  const post = { method: 'POST' as const, body, headers: { authorization: `Bearer ${investor}`, 'content-type': 'application/json' } };
  const probe = await fetch(`${appUrl}/issuance/offerings/${offeringId}/subscriptions`, { method: 'POST', body, headers: post.headers });
  if (probe.status !== 201) throw new Error(`subscription create answered ${probe.status}: ${await probe.text()}`);
  await load('warm-up', { ...common, duration: 2, url: `${floorUrl}/offerings`, headers: { 'x-api-key': apiKey } });
  await load('warm-up', { ...common, duration: 2, url: `${appUrl}/issuance/offerings?limit=20`, headers: { 'x-api-key': apiKey } });
  const listFloor = await load('bare route: offerings list', { ...common, url: `${floorUrl}/offerings`, headers: { 'x-api-key': apiKey } });
  const list = await load('GET /issuance/offerings', {
    ...common,
    url: `${appUrl}/issuance/offerings?limit=20`,
    headers: { 'x-api-key': apiKey },
  });
  const createFloor = await load('bare route: subscription create', { ...common, url: `${floorUrl}/subscriptions`, ...post });
  const create = await load('POST /issuance/offerings/:id/subscriptions', {
    ...common,
    url: `${appUrl}/issuance/offerings/${offeringId}/subscriptions`,
    ...post,
  });

  await floor.close();
  await server.close();
  return { database: database.kind, list, listFloor, create, createFloor };
}
