import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AccountsService } from '../accounts/accounts.service.ts';
import { badRequest } from '../jsonapi.ts';
import { accountIdSchema, emailSchema, jsonValueSchema, pageLinks, pageQuery, phoneSchema, noContentResponse } from '../schemas.ts';
import type { WalletsService } from '../wallets/wallets.service.ts';
import type { IdentitiesService, IdentityRow } from './identities.service.ts';

type Options = { identities: IdentitiesService; accounts: AccountsService; wallets: WalletsService };

/** Admins see every field; a public lookup sees the address and only the field it searched by. */
function identityResource(identity: IdentityRow, full: boolean, shown: { email?: boolean; phone?: boolean } = {}) {
  return {
    type: 'identity',
    id: String(identity.id),
    attributes: {
      address: identity.address,
      status: identity.status,
      updated_at: identity.updatedAt.toISOString(),
      ...(full || shown.email ? { email: identity.email } : {}),
      ...(full || shown.phone ? { phone_number: identity.phoneNumber } : {}),
      ...(full ? { telegram_username: identity.telegramUsername, passport: identity.passport } : {}),
    },
    relationships: { account: { links: { related: `/v3/accounts/${identity.address}` } } },
  };
}

const identityInput = z
  .object({ email: emailSchema.optional(), phone_number: phoneSchema.optional() })
  .refine((value) => value.email !== undefined || value.phone_number !== undefined, 'email or phone_number is required');

export async function identitiesRoutes(app: FastifyInstance, options: Options) {
  const { identities, accounts, wallets } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  /** A signed request must come from an admin; an unsigned one is a public lookup. */
  async function isAdmin(request: FastifyRequest): Promise<boolean> {
    if (!request.headers.signature && !request.headers.authorization) return false;
    await accounts.authorize(request, { admin: true });
    return true;
  }

  routes.get(
    '/identities',
    {
      schema: {
        tags: ['key server'],
        summary: 'Identities: full list for admins, lookup by one filter for everyone',
        querystring: z.object({
          ...pageQuery,
          'filter[email]': z.string().max(254).optional(),
          'filter[address]': z.string().max(56).optional(),
          'filter[phone]': z.string().max(20).optional(),
          'filter[identifier]': z.string().max(254).optional(),
          'filter[telegram_username]': z.string().max(64).optional(),
          'filter[passport]': z.string().max(64).optional(),
        }),
      },
    },
    async (request) => {
      const query = request.query;
      const filter = {
        email: query['filter[email]'],
        address: query['filter[address]'],
        phone: query['filter[phone]'],
        identifier: query['filter[identifier]'],
        telegramUsername: query['filter[telegram_username]'],
        passport: query['filter[passport]'],
      };
      const admin = await isAdmin(request);
      if (!admin && !filter.email && !filter.address && !filter.phone && !filter.identifier) {
        throw badRequest('filter', 'one of filter[email], filter[address], filter[phone] or filter[identifier] is required');
      }
      if (!admin && (filter.telegramUsername || filter.passport))
        throw badRequest('filter', 'only admins may filter by telegram username or passport');
      const limit = query['page[limit]'];
      const rows = await identities.list(filter, query['page[number]'] * limit, limit + 1);
      // A lookup reveals only what the caller already knew: the field that matched. An identifier
      // that matched the email does not reveal the phone number, and the other way round.
      const shown = (row: IdentityRow) => ({
        email: Boolean(filter.email) || (filter.identifier !== undefined && row.email === filter.identifier.toLowerCase()),
        phone: Boolean(filter.phone) || (filter.identifier !== undefined && row.phoneNumber === filter.identifier),
      });
      return {
        data: rows.slice(0, limit).map((row) => identityResource(row, admin, shown(row))),
        links: pageLinks(
          '/identities',
          Object.fromEntries(Object.entries(query).filter(([key]) => key.startsWith('filter['))),
          query['page[number]'],
          limit,
          rows.length > limit,
        ),
      };
    },
  );

  routes.post(
    '/identities',
    {
      schema: {
        tags: ['key server'],
        summary: 'Create an unregistered identity and its account (admin)',
        body: z.object({ data: z.object({ type: z.string().optional(), attributes: identityInput }) }),
      },
    },
    async (request, reply) => {
      await accounts.authorize(request, { admin: true });
      const { email, phone_number } = request.body.data.attributes;
      return reply
        .code(201)
        .send({ data: identityResource(await identities.createUnregistered({ email, phoneNumber: phone_number }), true) });
    },
  );

  routes.post(
    '/identities/mass-create',
    {
      schema: {
        tags: ['key server'],
        summary: 'Create unregistered identities in bulk (admin)',
        body: z.object({
          data: z
            .array(z.object({ type: z.string().optional(), attributes: identityInput }))
            .min(1)
            .max(100),
        }),
      },
    },
    async (request, reply) => {
      await accounts.authorize(request, { admin: true });
      const rows = await identities.massCreate(
        request.body.data.map(({ attributes }) => ({ email: attributes.email, phoneNumber: attributes.phone_number })),
      );
      return reply.code(201).send({ data: rows.map((row) => identityResource(row, true)) });
    },
  );

  routes.post(
    '/identities/mass-emails',
    {
      schema: {
        tags: ['key server'],
        summary: 'Identities of many accounts (admin)',
        body: z.object({
          data: z
            .array(z.object({ type: z.string().optional(), id: accountIdSchema }))
            .min(1)
            .max(500),
        }),
      },
    },
    async (request) => {
      await accounts.authorize(request, { admin: true });
      return { data: (await identities.byAddresses(request.body.data.map((item) => item.id))).map((row) => identityResource(row, true)) };
    },
  );

  routes.delete(
    '/identities/:identifier',
    {
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Delete an unregistered identity by address or email (owner or admin)',
        params: z.object({ identifier: z.string().max(254) }),
      },
    },
    async (request, reply) => {
      const { identifier } = request.params;
      const identity = accountIdSchema.safeParse(identifier).success
        ? await identities.byAddress(identifier)
        : await identities.byEmail(identifier);
      await accounts.authorize(request, { owner: identity.address, admin: true });
      await identities.delete(identity);
      return reply.code(204).send(null);
    },
  );

  const addressParams = z.object({ address: accountIdSchema });
  const owned = async (request: FastifyRequest, address: string, admin: boolean) => {
    const identity = await identities.byAddress(address);
    await accounts.authorize(request, { owner: address, admin });
    return identity;
  };

  routes.put(
    '/identities/:address/settings/phone',
    {
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Change the phone number (owner; second factor when enabled)',
        params: addressParams,
        body: z.object({ data: z.object({ type: z.string().optional(), attributes: z.object({ phone: phoneSchema }) }) }),
      },
    },
    async (request, reply) => {
      await owned(request, request.params.address, false);
      await wallets.requireSecondFactor(request, request.params.address, 'phone-change');
      await identities.setPhone(request.params.address, request.body.data.attributes.phone);
      return reply.code(204).send(null);
    },
  );
  routes.put(
    '/identities/:address/settings/telegram',
    {
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Change the telegram username (owner; second factor when enabled)',
        params: addressParams,
        body: z.object({
          data: z.object({
            type: z.string().optional(),
            attributes: z.object({ username: z.string().regex(/^@?\w{5,32}$/, 'must be a telegram username') }),
          }),
        }),
      },
    },
    async (request, reply) => {
      await owned(request, request.params.address, false);
      await wallets.requireSecondFactor(request, request.params.address, 'telegram-change');
      await identities.setTelegram(request.params.address, request.body.data.attributes.username.replace(/^@/, ''));
      return reply.code(204).send(null);
    },
  );

  const settingResource = (identity: IdentityRow, key: string, value: unknown) => ({
    type: 'identity_settings',
    id: `${identity.id}:${key}`,
    attributes: { key, value },
    relationships: { identity: { data: { type: 'identity', id: String(identity.id) } } },
  });
  routes.get(
    '/identities/:address/settings',
    {
      schema: {
        tags: ['key server'],
        summary: 'All settings of an identity (owner or admin)',
        params: addressParams,
        querystring: z.object(pageQuery),
      },
    },
    async (request) => {
      const identity = await owned(request, request.params.address, true);
      const limit = request.query['page[limit]'];
      const rows = await identities.settings(identity, request.query['page[number]'] * limit, limit + 1);
      return {
        data: rows.slice(0, limit).map((row) => settingResource(identity, row.key, row.value)),
        links: pageLinks(`/identities/${identity.address}/settings`, {}, request.query['page[number]'], limit, rows.length > limit),
      };
    },
  );
  const settingKey = z.string().regex(/^[\w.:-]{1,64}$/, 'must be 1-64 letters, digits, or _ . : -');
  routes.get(
    '/identities/:address/settings/:key',
    { schema: { tags: ['key server'], summary: 'One setting (value null when unset)', params: addressParams.extend({ key: settingKey }) } },
    async (request) => {
      const identity = await owned(request, request.params.address, true);
      return { data: settingResource(identity, request.params.key, await identities.setting(identity, request.params.key)) };
    },
  );
  routes.put(
    '/identities/:address/settings',
    {
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Set a setting (owner)',
        params: addressParams,
        body: z.object({
          data: z.object({
            type: z.string().optional(),
            attributes: z.object({ key: settingKey, value: jsonValueSchema.refine((value) => value !== null, 'cannot be null') }),
          }),
        }),
      },
    },
    async (request, reply) => {
      const identity = await owned(request, request.params.address, false);
      const { key, value } = request.body.data.attributes;
      if (key === 'client_domain' && (typeof value !== 'string' || !/^[a-z0-9.-]+(:\d+)?$/i.test(value))) {
        throw badRequest('/data/attributes/value', 'client_domain must be a domain name');
      }
      if (JSON.stringify(value).length > 10_000) throw badRequest('/data/attributes/value', 'is too large');
      await identities.setSetting(identity, key, value);
      return reply.code(204).send(null);
    },
  );
}
