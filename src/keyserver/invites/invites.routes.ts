import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AccountsService } from '../accounts/accounts.service.ts';
import { badRequest } from '../jsonapi.ts';
import { queryInt4 } from '../../platform/http/integers.ts';
import { accountIdSchema, emailSchema, pageLinks, pageQuery, noContentResponse } from '../schemas.ts';
import type { InviteRow, InvitesService } from './invites.service.ts';

const inviteInput = z.object({
  type: z.enum(['whitelist-invite', 'general-invite']),
  attributes: z.object({ email: emailSchema }),
  relationships: z.object({ sales: z.object({ data: z.object({ id: z.coerce.string().min(1).max(64) }) }) }).optional(),
});

const inviteResource = (invite: InviteRow, inviteeAccountId?: string | null) => ({
  type: invite.type,
  id: String(invite.id),
  attributes: { email: invite.email },
  relationships: {
    ...(invite.saleId ? { sales: { data: { type: 'sales', id: invite.saleId } } } : {}),
    ...(inviteeAccountId ? { accounts: { data: [{ type: 'accounts', id: inviteeAccountId }] } } : {}),
  },
});

/** Invites: the inviter is the signing account (`Account-Id`); only it or an admin sees or removes them. */
/** `limits.perRequest`: invites per request (the service holds the daily limit per inviting account). */
export async function invitesRoutes(
  app: FastifyInstance,
  options: {
    invites: InvitesService;
    accounts: AccountsService;
    limits: { perRequest: number };
  },
) {
  const { invites, accounts } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const inviter = async (request: Parameters<AccountsService['authorize']>[0]) => {
    const header = request.headers['account-id'];
    const owner = typeof header === 'string' && accountIdSchema.safeParse(header).success ? header : undefined;
    const { access } = await accounts.authorize(request, { owner, admin: true });
    return { accountId: access === 'admin' ? await accounts.masterAccount() : owner!, admin: access === 'admin' };
  };

  routes.post(
    '/invites',
    {
      schema: {
        tags: ['key server'],
        summary: 'Invite one or many emails',
        body: z.object({ data: z.union([inviteInput, z.array(inviteInput).min(1).max(100)]) }),
      },
    },
    async (request, reply) => {
      const { accountId } = await inviter(request);
      const items = Array.isArray(request.body.data) ? request.body.data : [request.body.data];
      if (items.length > options.limits.perRequest) throw badRequest('/data', `at most ${options.limits.perRequest} invites per request`);
      const created = await invites.create(
        accountId,
        items.map((item, index) => {
          const saleId = item.relationships?.sales.data.id ?? '';
          if (item.type === 'whitelist-invite' && !saleId)
            throw badRequest(`/data/${index}/relationships/sales/data/id`, 'cannot be blank');
          return { type: item.type, email: item.attributes.email, saleId };
        }),
      );
      return reply
        .code(201)
        .send({ data: Array.isArray(request.body.data) ? created.map((invite) => inviteResource(invite)) : inviteResource(created[0]!) });
    },
  );

  routes.get(
    '/invites',
    {
      schema: {
        tags: ['key server'],
        summary: 'List invites (the inviter or an admin)',
        querystring: z.object({
          'filter[sale-id]': z.string().max(64).optional(),
          ...pageQuery,
        }),
      },
    },
    async (request) => {
      const { accountId, admin } = await inviter(request);
      const saleId = request.query['filter[sale-id]'];
      const limit = request.query['page[limit]'];
      const rows = await invites.list(
        { saleId, creatorId: admin ? undefined : accountId },
        request.query['page[number]'] * limit,
        limit + 1,
      );
      return {
        data: rows.slice(0, limit).map((row) => inviteResource(row.invite, row.accountId)),
        links: pageLinks('/invites', { 'filter[sale-id]': saleId }, request.query['page[number]'], limit, rows.length > limit),
      };
    },
  );

  routes.delete(
    '/invites',
    {
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Delete invites',
        body: z.object({
          data: z
            .array(z.object({ type: z.string().optional(), id: queryInt4(1) }))
            .min(1)
            .max(100),
        }),
      },
    },
    async (request, reply) => {
      const { accountId, admin } = await inviter(request);
      await invites.remove(
        request.body.data.map((item) => item.id),
        admin ? undefined : accountId,
      );
      return reply.code(204).send(null);
    },
  );
}
