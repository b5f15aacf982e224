import { and, asc, eq, inArray } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Db } from '../../platform/db/database.ts';
import type { Mailer } from '../../platform/mail/mailer.ts';
import type { AccountsService } from '../accounts/accounts.service.ts';
import { badRequest, conflict } from '../jsonapi.ts';
import { ksInvites } from '../keyserver.tables.ts';
import { accountIdSchema, emailSchema, pageLinks } from '../schemas.ts';

type InviteRow = typeof ksInvites.$inferSelect;

const inviteInput = z.object({
  type: z.enum(['whitelist-invite', 'general-invite']),
  attributes: z.object({ email: emailSchema }),
  relationships: z.object({ sales: z.object({ data: z.object({ id: z.coerce.string().min(1).max(64) }) }) }).optional(),
});

const inviteResource = (invite: InviteRow) => ({
  type: invite.type,
  id: String(invite.id),
  attributes: { email: invite.email },
  relationships: invite.saleId ? { sales: { data: { type: 'sales', id: invite.saleId } } } : {},
});

/** Invites: the inviter is the signing account (`Account-Id`); only it or an admin sees or removes them. */
export async function invitesRoutes(app: FastifyInstance, options: { db: Db; accounts: AccountsService; mailer: Mailer }) {
  const { db, accounts } = options;
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
      const rows = items.map((item, index) => {
        const saleId = item.relationships?.sales.data.id ?? '';
        if (item.type === 'whitelist-invite' && !saleId) throw badRequest(`/data/${index}/relationships/sales/data/id`, 'cannot be blank');
        return { type: item.type, email: item.attributes.email, saleId, creatorId: accountId };
      });
      const inserted = await db.transaction(async (tx) => {
        const created = await tx.insert(ksInvites).values(rows).onConflictDoNothing().returning();
        if (created.length < rows.length) throw conflict('invite already exists');
        return created;
      });
      for (const invite of inserted) {
        await options.mailer.send({
          to: invite.email,
          subject: 'You are invited',
          text: invite.saleId ? `You have been invited to take part in offering ${invite.saleId}.` : 'You have been invited to join.',
        });
      }
      return reply.code(201).send({ data: Array.isArray(request.body.data) ? inserted.map(inviteResource) : inviteResource(inserted[0]!) });
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
          'page[number]': z.coerce.number().int().min(0).default(0),
          'page[limit]': z.coerce.number().int().min(1).max(100).default(15),
        }),
      },
    },
    async (request) => {
      const { accountId, admin } = await inviter(request);
      const saleId = request.query['filter[sale-id]'];
      const limit = request.query['page[limit]'];
      const rows = await db
        .select()
        .from(ksInvites)
        .where(and(saleId ? eq(ksInvites.saleId, saleId) : undefined, admin ? undefined : eq(ksInvites.creatorId, accountId)))
        .orderBy(asc(ksInvites.id))
        .offset(request.query['page[number]'] * limit)
        .limit(limit + 1);
      return {
        data: rows.slice(0, limit).map(inviteResource),
        links: pageLinks('/invites', { 'filter[sale-id]': saleId }, request.query['page[number]'], limit, rows.length > limit),
      };
    },
  );

  routes.delete(
    '/invites',
    {
      schema: {
        tags: ['key server'],
        summary: 'Delete invites',
        body: z.object({
          data: z
            .array(z.object({ type: z.string().optional(), id: z.coerce.number().int().min(1) }))
            .min(1)
            .max(100),
        }),
      },
    },
    async (request, reply) => {
      const { accountId, admin } = await inviter(request);
      const ids = request.body.data.map((item) => item.id);
      await db.delete(ksInvites).where(and(inArray(ksInvites.id, ids), admin ? undefined : eq(ksInvites.creatorId, accountId)));
      return reply.code(204).send();
    },
  );
}
