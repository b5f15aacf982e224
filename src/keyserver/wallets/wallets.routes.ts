import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AccountsService } from '../accounts/accounts.service.ts';
import { badRequest, conflict, notFound, tooManyRequests } from '../jsonapi.ts';
import {
  accountIdSchema,
  emailSchema,
  pageLinks,
  pageQuery,
  signerResourceSchema,
  toNewSigner,
  walletIdSchema,
  noContentResponse,
} from '../schemas.ts';
import type { Tfa } from './tfa.ts';
import type { WalletRow } from './wallets.repo.ts';
import { int4, queryInt4 } from '../../platform/http/integers.ts';
import { enforceRateLimit, type RateLimitCounters } from '../../platform/http/rate-limit-store.ts';
import { KDF_VERSIONS, type Session, type WalletsService } from './wallets.service.ts';

type Options = {
  wallets: WalletsService;
  accounts: AccountsService;
  tfa: Tfa;
  rateLimit: { max: number; timeWindow: number };
  /** Login counts its hits itself, in its read (the other routes through `@fastify/rate-limit`, on the same counters). */
  counters: RateLimitCounters;
};

const ref = (type: z.ZodType<string>) => z.object({ data: z.object({ type, id: z.coerce.string() }) });
const passwordResource = z.object({
  type: z.literal('password'),
  id: z.coerce.string(),
  attributes: z.object({ account_id: accountIdSchema, keychain_data: z.string().min(1).max(20_000), salt: z.string().min(1).max(200) }),
});
const walletAttributes = z.object({
  email: emailSchema,
  account_id: accountIdSchema,
  salt: z.string().min(1).max(200),
  keychain_data: z.string().min(1).max(20_000),
});
const includedItem = z.object({ type: z.string(), id: z.coerce.string().optional() }).loose();
/** Clients put a `null` in `included` where an optional resource (location) is absent. */
const included = z
  .array(includedItem.nullable())
  .max(30)
  .transform((items) => items.filter((item) => item !== null));

function kdfVersion(id: string): number {
  const version = Number(id);
  if (!KDF_VERSIONS[version]) throw badRequest('/data/relationships/kdf/data/id', 'invalid kdf version');
  return version;
}

function passwordFactor(items: unknown[], factorId: string) {
  const found = items.find(
    (item) => (item as { type?: string; id?: string }).type === 'password' && String((item as { id?: string }).id) === factorId,
  );
  const parsed = passwordResource.safeParse(found);
  if (!parsed.success)
    throw badRequest('/included', 'a password factor (account_id, keychain_data, salt) matching relationships.factor is required');
  const { account_id, keychain_data, salt } = parsed.data.attributes;
  return { accountId: account_id, keychainData: keychain_data, salt };
}

export function walletResource(wallet: WalletRow, factorId: number | undefined, session?: Session) {
  return {
    data: {
      type: 'wallet',
      id: wallet.walletId,
      attributes: {
        account_id: wallet.accountId,
        email: wallet.email,
        keychain_data: wallet.keychainData,
        verified: wallet.verified,
        ...(wallet.verificationSentAt ? { last_sent_at: wallet.verificationSentAt.toISOString() } : {}),
      },
      relationships: {
        kdf: { data: { type: 'kdf', id: String(wallet.kdfVersion) } },
        ...(factorId !== undefined ? { factor: { data: { type: 'password', id: String(factorId) } } } : {}),
        ...(session ? { session: { data: { type: 'session', id: session.id } } } : {}),
      },
    },
    ...(session ? { included: [sessionResource(session)] } : {}),
  };
}

export const sessionResource = (session: Session) => ({
  type: 'session',
  id: session.id,
  attributes: { encryption_key: session.encryptionKey, expires_at: session.expiresAt.toISOString() },
});

export async function walletsRoutes(app: FastifyInstance, options: Options) {
  const { wallets, accounts, tfa } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const limited = (prefix: string) => ({
    rateLimit: { ...options.rateLimit, keyGenerator: (request: { ip: string }) => `${prefix}:${request.ip}` },
  });

  const kdfQuery = z.object({ email: z.string().max(254).optional(), is_recovery: z.string().optional() });
  for (const path of ['/kdf', '/wallets/kdf']) {
    routes.get(
      path,
      {
        config: limited('kdf'),
        schema: { tags: ['key server'], summary: 'KDF parameters (default or for an email)', querystring: kdfQuery },
      },
      async (request) => {
        const { version, salt } = await wallets.kdfFor(request.query.email || undefined);
        return { data: { type: 'kdf', id: String(version), attributes: { ...KDF_VERSIONS[version]!, ...(salt ? { salt } : {}) } } };
      },
    );
  }

  routes.post(
    '/wallets',
    {
      config: limited('wallet-create'),
      schema: {
        tags: ['key server'],
        summary: 'Create a wallet (and its account with signers)',
        body: z.object({
          data: z.object({
            type: z.literal('wallet'),
            id: walletIdSchema,
            attributes: walletAttributes.extend({
              verification_code: z.string().max(64).optional(),
              invite_code: z.string().max(64).optional(),
            }),
            relationships: z.object({
              kdf: ref(z.string()),
              factor: ref(z.literal('password')),
              signers: z.object({ data: z.array(z.object({ type: z.string(), id: accountIdSchema })).max(20) }).optional(),
            }),
          }),
          included,
        }),
      },
    },
    async (request, reply) => {
      const { data } = request.body;
      const version = kdfVersion(data.relationships.kdf.data.id);
      const factor = passwordFactor(request.body.included, data.relationships.factor.data.id);
      const signers = (data.relationships.signers?.data ?? []).map((signerRef, index) => {
        const parsed = signerResourceSchema.safeParse(
          request.body.included.find((item) => item.type === 'signer' && item.id === signerRef.id),
        );
        if (!parsed.success)
          throw badRequest(`/data/relationships/signers/data/${index}/id`, 'signer must be in included with role_id and weight');
        return toNewSigner(parsed.data);
      });
      const { wallet, factorId, session } = await wallets.create(
        {
          walletId: data.id,
          email: data.attributes.email,
          accountId: data.attributes.account_id,
          salt: data.attributes.salt,
          keychainData: data.attributes.keychain_data,
          kdfVersion: version,
        },
        factor,
        wallets.initialSigners(data.attributes.account_id, signers),
        data.attributes.verification_code,
      );
      return reply.code(201).send(walletResource(wallet, factorId, session));
    },
  );

  const walletParams = z.object({ walletId: walletIdSchema });
  routes.get(
    '/wallets/:walletId',
    {
      schema: {
        tags: ['key server'],
        summary: 'Get a wallet (login): opens a session',
        params: walletParams,
        querystring: z.object({
          location_lat: z.string().optional(),
          location_long: z.string().optional(),
          public_ip: z.string().optional(),
        }),
      },
    },
    async (request, reply) => {
      const { max, timeWindow } = options.rateLimit;
      const { wallet, factorId, session } = await wallets.get(request, request.params.walletId, {
        // The key `limited('wallet-get')` would use, so processes of an older release count on the same row.
        counter: options.counters.along(`wallet-get:${request.ip}`, timeWindow),
        admit: (hit) => enforceRateLimit(reply, max, hit, (seconds) => tooManyRequests(`Too many requests; retry in ${seconds} s`)),
      });
      return walletResource(wallet, factorId, session);
    },
  );

  routes.put(
    '/wallets/:walletId',
    {
      schema: {
        tags: ['key server'],
        summary: 'Change password, recover with the recovery seed, or KYC recovery',
        params: walletParams,
        body: z.object({
          data: z.discriminatedUnion('type', [
            z.object({
              type: z.literal('wallet'),
              id: walletIdSchema,
              attributes: walletAttributes,
              relationships: z.object({
                kdf: ref(z.string()),
                factor: ref(z.literal('password')),
                transaction: ref(z.literal('transaction')),
              }),
            }),
            z.object({
              type: z.literal('recovery-wallet'),
              id: walletIdSchema,
              attributes: walletAttributes.omit({ account_id: true }).extend({ account_id: accountIdSchema.optional() }),
              relationships: z.object({ kdf: ref(z.string()), factor: ref(z.literal('password')), signer: ref(z.literal('signer')) }),
            }),
          ]),
          included,
        }),
      },
    },
    async (request) => {
      const { data } = request.body;
      const version = kdfVersion(data.relationships.kdf.data.id);
      const factor = passwordFactor(request.body.included, data.relationships.factor.data.id);
      const base = {
        walletId: data.id,
        email: data.attributes.email,
        salt: data.attributes.salt,
        keychainData: data.attributes.keychain_data,
        kdfVersion: version,
      };
      if (data.type === 'recovery-wallet') {
        if (data.id !== request.params.walletId) throw badRequest('/data/id', 'must be the wallet id in the URL');
        const signer = accountIdSchema.safeParse(data.relationships.signer.data.id);
        if (!signer.success) throw badRequest('/data/relationships/signer/data/id', 'must be a valid account id');
        const wallet = await wallets.kycRecover(request, { ...base, signer: signer.data }, factor);
        return walletResource(wallet, undefined);
      }
      const transaction = request.body.included.find(
        (item) => item.type === 'transaction' && item.id === data.relationships.transaction.data.id,
      );
      const envelope = (transaction as { attributes?: { envelope?: unknown } } | undefined)?.attributes?.envelope;
      if (typeof envelope !== 'string' || envelope.length === 0)
        throw badRequest('/included/0/attributes/envelope', 'a transaction envelope is required');
      const wallet = await wallets.update(
        request,
        request.params.walletId,
        { ...base, accountId: data.attributes.account_id },
        factor,
        envelope,
      );
      return walletResource(wallet, undefined);
    },
  );

  routes.delete(
    '/wallets/:walletId',
    {
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Delete a wallet (admin)',
        params: walletParams,
      },
    },
    async (request, reply) => {
      await accounts.authorize(request, { admin: true });
      await wallets.remove(request.params.walletId);
      return reply.code(204).send(null);
    },
  );

  routes.get(
    '/wallets',
    {
      schema: {
        tags: ['key server'],
        summary: 'List wallets (admin)',
        querystring: z.object({
          ...pageQuery,
          state: z.coerce.number().int().min(0).max(3).optional(),
          'filter[state]': z.coerce.number().int().min(0).max(3).optional(),
        }),
      },
    },
    async (request) => {
      await accounts.authorize(request, { admin: true });
      const query = request.query;
      const state = query['filter[state]'] ?? query.state ?? 3;
      const verified = state === 1 ? false : state === 2 ? true : undefined;
      const limit = query['page[limit]'];
      const rows = await wallets.list({ verified, offset: query['page[number]'] * limit, limit: limit + 1 });
      return {
        data: rows.slice(0, limit).map((wallet) => walletResource(wallet, undefined).data),
        links: pageLinks('/wallets', { 'filter[state]': state }, query['page[number]'], limit, rows.length > limit),
      };
    },
  );

  routes.post(
    '/wallets/:walletId/verification',
    {
      config: limited('wallet-verification'),
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Send the verification email again',
        params: walletParams,
      },
    },
    async (request, reply) => {
      await wallets.resendVerification(request.params.walletId);
      return reply.code(204).send(null);
    },
  );

  routes.put(
    '/wallets/:walletId/verification',
    {
      config: limited('wallet-verification'),
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Confirm the email with the token from the link',
        params: walletParams,
        body: z.object({ data: z.object({ type: z.string().optional(), attributes: z.object({ token: z.string().min(1).max(64) }) }) }),
      },
    },
    async (request, reply) => {
      await wallets.verifyEmail(request.params.walletId, request.body.data.attributes.token);
      return reply.code(204).send(null);
    },
  );

  routes.get(
    '/sessions/:sessionId',
    {
      schema: {
        tags: ['key server'],
        summary: 'Get and extend a session',
        params: z.object({ sessionId: z.string().regex(/^[0-9a-f]{32}$/, 'invalid session id') }),
      },
    },
    async (request) => ({ data: sessionResource(await wallets.extendSession(request.params.sessionId)) }),
  );

  const factorParams = walletParams.extend({ factorId: queryInt4(1) });
  const ownedWallet = async (request: Parameters<AccountsService['authorize']>[0], walletId: string) => {
    const wallet = await wallets.mustFind(walletId);
    await accounts.authorize(request, { owner: wallet.accountId });
    return wallet;
  };

  routes.get(
    '/wallets/:walletId/factors',
    { schema: { tags: ['key server'], summary: "A wallet's second factors", params: walletParams } },
    async (request) => {
      const wallet = await ownedWallet(request, request.params.walletId);
      const factors = (await wallets.factors(wallet)).filter((factor) => factor.type !== 'email');
      return { data: factors.map((factor) => ({ type: factor.type, id: factor.id, attributes: { priority: factor.priority } })) };
    },
  );

  routes.post(
    '/wallets/:walletId/factors',
    {
      schema: {
        tags: ['key server'],
        summary: 'Create a (disabled) TOTP factor',
        params: walletParams,
        body: z.object({ data: z.object({ type: z.string() }) }),
      },
    },
    async (request, reply) => {
      const wallet = await ownedWallet(request, request.params.walletId);
      if (request.body.data.type === 'password') throw conflict('factor should be created during the signup');
      if (request.body.data.type !== 'totp') throw badRequest('/data/type', 'only totp factors can be created');
      await tfa.require(request, wallet, { mixin: 'factor-create', types: ['password'] });
      const created = await tfa.createTotp(wallet);
      if (!created) throw conflict('a totp factor already exists');
      return reply
        .code(201)
        .send({ data: { type: 'totp', id: created.factor.id, attributes: { secret: created.secret, seed: created.uri, priority: 0 } } });
    },
  );

  routes.patch(
    '/wallets/:walletId/factors/:factorId',
    {
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Set a factor priority (enabling needs that factor verified)',
        params: factorParams,
        body: z.object({
          data: z.object({ type: z.string().optional(), attributes: z.object({ priority: int4(0, 1000) }) }),
        }),
      },
    },
    async (request, reply) => {
      const wallet = await ownedWallet(request, request.params.walletId);
      const factor = await wallets.factor(wallet, request.params.factorId);
      if (!factor || factor.type === 'email') throw notFound('factor not found');
      if (factor.type === 'password') throw badRequest('/data/attributes/priority', 'the password factor cannot be changed');
      const priority = request.body.data.attributes.priority;
      if (priority > 0 && factor.priority === 0) await tfa.require(request, wallet, { mixin: 'factor-enable', factorId: factor.id });
      await wallets.updateFactor(factor.id, priority);
      return reply.code(204).send(null);
    },
  );

  routes.delete(
    '/wallets/:walletId/factors/:factorId',
    {
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Delete a factor',
        params: factorParams,
      },
    },
    async (request, reply) => {
      const wallet = await ownedWallet(request, request.params.walletId);
      const factor = await wallets.factor(wallet, request.params.factorId);
      if (!factor || factor.type === 'email') return reply.code(204).send(null);
      if (factor.type === 'password') throw badRequest('/data/id', 'the password factor cannot be deleted');
      if (factor.priority > 0) await tfa.require(request, wallet, { mixin: 'factor-delete', types: ['password'] });
      await wallets.deleteFactor(factor.id);
      return reply.code(204).send(null);
    },
  );

  routes.put(
    '/wallets/:walletId/factors/:factorId/verification',
    {
      config: limited('factor-verify'),
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Verify a second-factor challenge',
        params: factorParams,
        body: z.object({
          data: z.object({
            type: z.string().optional(),
            attributes: z.object({ token: z.string().min(1).max(128), otp: z.coerce.string().min(1).max(200) }),
          }),
        }),
      },
    },
    async (request, reply) => {
      const wallet = await wallets.mustFind(request.params.walletId);
      const { token, otp } = request.body.data.attributes;
      await tfa.verifyChallenge(wallet.id, request.params.factorId, token, otp);
      return reply.code(204).send(null);
    },
  );
}
