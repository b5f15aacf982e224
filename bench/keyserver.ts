import { createHash, createPublicKey, randomBytes, randomUUID, verify } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Keypair } from '@stellar/stellar-base';
import { and, asc, desc, eq, gt, inArray, notInArray } from 'drizzle-orm';
import Fastify from 'fastify';
import { ksBlobs, ksFactors, ksSessions, ksSigners, ksWallets } from '../src/keyserver/keyserver.tables.ts';
import { aad, keyserverSealer } from '../src/keyserver/at-rest.ts';
import { rateLimitCounters } from '../src/platform/http/rate-limit-store.ts';
import { auditRepo } from '../src/platform/audit/audit.repo.ts';
import { entryHashParts } from '../src/platform/audit/audit.service.ts';
import { loadConfig } from '../src/config.ts';
import { load, startBenchServer } from './support.ts';

/** A TokenD SDK-style signature: `(request-target)` only, so one header serves every repeat of a GET. */
function signature(keypair: Keypair, method: string, path: string): string {
  const digest = createHash('sha256').update(`(request-target): ${method} ${path}`).digest();
  return `keyId="${keypair.publicKey()}",algorithm="ed25519-sha256",headers="(request-target)",signature="${keypair.sign(digest).toString('base64')}"`;
}

/**
 * Login (`GET /wallets/:id`, unsigned: the wallet id is the password proof) and a signed private
 * blob read (`GET /blobs/:id`) through the whole stack (rate limiter, JSON:API, 2FA check, schema
 * validation, logging), next to a bare Fastify route that runs the same SQL and the same at-rest
 * crypto: for login, two statements, as the route's: the per-address counter hit (the brute-force
 * guard) with the wallet by the keyed hash of its id (its sealed document opened) and its
 * factors, then a sealed session insert keyed by the session id's keyed hash with its audit entry
 * (chain head locked, entry linked and hashed in the database, head moved); for the blob, a raw
 * Ed25519 verify, the blob (its sealed value opened) and the signer lookup.
 */
export async function benchKeyserver(options: { seconds: number; connections: number; databaseUrl?: string }) {
  const defaults = loadConfig({}).keyserver;
  const server = await startBenchServer({
    databaseUrl: options.databaseUrl,
    config: { keyserver: { ...defaults, emailVerification: false, rateLimitPerMinute: 100_000_000 } },
  });
  const { database, modules, keyring } = server;
  const { db } = database;
  const sealer = keyserverSealer(keyring);
  const appUrl = server.url;

  const owner = Keypair.random();
  const walletId = randomBytes(32).toString('hex');
  const keychain = randomBytes(300).toString('base64');
  await modules.keyserver.wallets.create(
    { walletId, email: 'bench@example.com', accountId: owner.publicKey(), salt: 'c2FsdA==', keychainData: keychain, kdfVersion: 2 },
    { accountId: Keypair.random().publicKey(), salt: 'c2FsdA==', keychainData: keychain },
    [{ publicKey: owner.publicKey(), roleId: 2, weight: 1000, identity: 1, details: '{}' }],
  );
  const created = await fetch(`${appUrl}/blobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/vnd.api+json', signature: signature(owner, 'post', '/blobs') },
    body: JSON.stringify({
      data: {
        type: 'kyc_form',
        attributes: { value: JSON.stringify({ first_name: 'Bench', last_name: 'Mark', documents: {} }) },
        relationships: { owner: { data: { id: owner.publicKey() } } },
      },
    }),
  });
  if (created.status !== 201) throw new Error(`blob create answered ${created.status}: ${await created.text()}`);
  const blobId = ((await created.json()) as { data: { id: string } }).data.id;
  const kycRecoveryRole = defaults.kycRecoverySignerRole;

  const floor = Fastify();
  const counters = rateLimitCounters(db, keyring, 'bench-floor');
  const audit = auditRepo(db);
  floor.get<{ Params: { walletId: string } }>('/wallets/:walletId', async (request, reply) => {
    // The counter hit and the wallet with its factors in one statement, as the route reads them.
    const counter = counters.along(`wallet-get:${request.ip}`, 60_000);
    const rows = await db
      .with(counter.cte)
      .select({ hit: counter.fields, wallet: ksWallets, factor: ksFactors })
      .from(counter.cte)
      .leftJoin(ksWallets, eq(ksWallets.walletIdDigest, sealer.digest('wallet-id', request.params.walletId)))
      .leftJoin(ksFactors, eq(ksFactors.walletPk, ksWallets.id))
      .orderBy(desc(ksFactors.priority), asc(ksFactors.id));
    if (counter.result(rows[0]!.hit).current > 100_000_000) return reply.code(429).send({});
    const row = rows[0]!.wallet;
    if (!row) return reply.code(404).send({});
    const wallet = { ...row, ...sealer.open<{ walletId: string; email: string }>(row, aad.wallet(row.id)) };
    const factors = rows.flatMap((entry) => (entry.factor ? [entry.factor] : []));
    if (factors.some((factor) => factor.type === 'totp' && factor.priority > 0)) return reply.code(403).send({});
    const id = randomBytes(16).toString('hex');
    const encryptionKey = randomBytes(32).toString('hex');
    const expiresAt = new Date(Date.now() + 600_000);
    const digest = sealer.sessionDigest(id);
    // The session insert and its audit entry (head locked, entry linked and hashed, head moved) in one statement.
    const entry = {
      id: randomUUID(),
      chainId: `keyserver:${wallet.id.slice(0, 1)}`,
      orgId: null,
      actorKind: 'user' as const,
      actorId: `wallet:${wallet.id}`,
      action: 'keyserver.session.created',
      subjectType: 'wallet',
      subjectId: wallet.id,
      related: [],
      requestId: request.id,
      stateDigest: null,
      details: { expires_at: expiresAt.toISOString() },
      occurredAt: new Date(),
    };
    const insert = db
      .insert(ksSessions)
      .values({ id: digest, walletPk: wallet.id, expiresAt, ...sealer.seal(encryptionKey, aad.session(digest)) });
    if (!(await audit.appendWith(entry, entryHashParts(entry), insert.getSQL(), db))) return reply.code(500).send({});
    return { wallet, session: { id, encryptionKey, expiresAt } };
  });
  const publicKey = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(owner.rawPublicKey()).toString('base64url') },
    format: 'jwk',
  });
  floor.get<{ Params: { blobId: string } }>('/blobs/:blobId', async (request, reply) => {
    const signed = /signature="([^"]+)"/.exec(String(request.headers.signature))?.[1] ?? '';
    const digest = createHash('sha256').update(`(request-target): get ${request.url}`).digest();
    if (!verify(null, digest, publicKey, Buffer.from(signed, 'base64'))) return reply.code(401).send({});
    const [stored] = await db.select().from(ksBlobs).where(eq(ksBlobs.id, request.params.blobId));
    if (!stored) return reply.code(404).send({});
    const blob = { id: stored.id, type: stored.type, ownerId: stored.ownerId, value: sealer.open<string>(stored, aad.blob(stored.id)) };
    const [signer] = await db
      .select({ accountId: ksSigners.accountId })
      .from(ksSigners)
      .where(
        and(
          eq(ksSigners.publicKey, owner.publicKey()),
          inArray(ksSigners.accountId, [blob.ownerId]),
          gt(ksSigners.weight, 0),
          notInArray(ksSigners.roleId, [kycRecoveryRole]),
        ),
      )
      .limit(1);
    if (!signer) return reply.code(401).send({});
    return { data: blob };
  });
  await floor.listen({ port: 0, host: '127.0.0.1' });
  const floorUrl = `http://127.0.0.1:${(floor.server.address() as AddressInfo).port}`;

  const common = { connections: options.connections, duration: options.seconds };
  const warm = { ...common, duration: Math.max(1, Math.round(options.seconds / 4)) };
  const blobHeaders = { signature: signature(owner, 'get', `/blobs/${blobId}`) };
  const targets = {
    loginFloor: ['bare route: counter + wallet + factors; session + audit entry', { url: `${floorUrl}/wallets/${walletId}` }],
    login: ['GET /wallets/:id (login)', { url: `${appUrl}/wallets/${walletId}` }],
    blobFloor: ['bare route: Ed25519 verify + blob + signer', { url: `${floorUrl}/blobs/${blobId}`, headers: blobHeaders }],
    blob: ['GET /blobs/:id (signed, private)', { url: `${appUrl}/blobs/${blobId}`, headers: blobHeaders }],
  } as const;
  for (const [, target] of Object.values(targets)) await load('warm-up', { ...warm, ...target });
  const results = {
    loginFloor: await load(targets.loginFloor[0], { ...common, ...targets.loginFloor[1] }),
    login: await load(targets.login[0], { ...common, ...targets.login[1] }),
    blobFloor: await load(targets.blobFloor[0], { ...common, ...targets.blobFloor[1] }),
    blob: await load(targets.blob[0], { ...common, ...targets.blob[1] }),
  };

  await floor.close();
  await server.close();
  return { database: database.kind, ...results };
}
