import { createHash } from 'node:crypto';
import { base32nopad } from '@scure/base';
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import type { Db } from '../../platform/db/database.ts';
import type { AccountsService } from '../accounts/accounts.service.ts';
import { aad, keyserverSealer } from '../at-rest.ts';
import { badRequest, notFound } from '../jsonapi.ts';
import { ksBlobs } from '../keyserver.tables.ts';
import { queryInt4 } from '../../platform/http/integers.ts';
import { accountIdSchema, noContentResponse } from '../schemas.ts';

/** Blob types are bit flags; up to token_metrics they are public (research/tokend.md §1.4). */
export const BLOB_TYPES: Record<string, number> = {
  asset_description: 1,
  fund_overview: 2,
  fund_update: 4,
  nav_update: 8,
  fund_document: 16,
  alpha: 32,
  bravo: 64,
  charlie: 128,
  delta: 256,
  token_terms: 512,
  token_metrics: 1024,
  kyc_form: 2048,
  kyc_id_document: 4096,
  kyc_poa: 8192,
  identity_mind_reject: 16384,
};
const BLOB_NAMES = Object.fromEntries(Object.entries(BLOB_TYPES).map(([name, value]) => [value, name]));
const isPublic = (type: number) => type <= BLOB_TYPES.token_metrics!;
const MAX_BLOB_BYTES = 512 * 1024;

type StoredBlob = typeof ksBlobs.$inferSelect;
type BlobRow = Pick<StoredBlob, 'id' | 'type' | 'ownerId' | 'deletedAt'> & { value: string };

/** base32 (RFC 4648, no padding) of SHA-256(owner + decimal type + value): the same blob has the same id. */
export function blobId(owner: string, type: number, value: string): string {
  return base32nopad.encode(createHash('sha256').update(`${owner}${type}${value}`, 'utf8').digest());
}

const blobResource = (blob: BlobRow) => ({
  type: BLOB_NAMES[blob.type]!,
  id: blob.id,
  attributes: { value: blob.value, ...(blob.deletedAt ? { deleted_at: blob.deletedAt.toISOString() } : {}) },
  relationships: { owner: { data: { type: 'accounts', id: blob.ownerId } } },
});

/**
 * Every blob value is sealed, whatever its type: the private types hold PII (`kyc_form` holds
 * SSNs), and no query looks inside a value.
 */
export async function blobsRoutes(app: FastifyInstance, options: { db: Db; accounts: AccountsService; keyring: Keyring }) {
  const { db, accounts } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  const sealer = keyserverSealer(options.keyring);
  const open = (row: StoredBlob): BlobRow => ({
    id: row.id,
    type: row.type,
    ownerId: row.ownerId,
    deletedAt: row.deletedAt,
    value: sealer.open<string>(row, aad.blob(row.id)),
  });

  const createBody = z.object({
    data: z.object({
      type: z.string().refine((type) => Object.hasOwn(BLOB_TYPES, type), 'invalid blob type'),
      attributes: z.object({ value: z.string().max(MAX_BLOB_BYTES) }),
      relationships: z.object({ owner: z.object({ data: z.object({ id: accountIdSchema }) }) }).optional(),
    }),
  });

  async function create(request: FastifyRequest, body: z.infer<typeof createBody>, owner: string | undefined) {
    if (!owner) throw badRequest('/data/relationships/owner/data/id', 'cannot be blank');
    await accounts.authorize(request, { owner, admin: true });
    const type = BLOB_TYPES[body.data.type]!;
    const id = blobId(owner, type, body.data.attributes.value);
    await db
      .insert(ksBlobs)
      .values({ id, type, ownerId: owner, ...sealer.seal(body.data.attributes.value, aad.blob(id)) })
      .onConflictDoNothing();
    const [blob] = await db.select().from(ksBlobs).where(eq(ksBlobs.id, id));
    return { data: blobResource(open(blob!)) };
  }

  routes.post(
    '/blobs',
    { schema: { tags: ['key server'], summary: 'Create a blob (owner or admin)', body: createBody } },
    async (request, reply) => reply.code(201).send(await create(request, request.body, request.body.data.relationships?.owner.data.id)),
  );
  routes.post(
    '/accounts/:address/blobs',
    {
      schema: {
        tags: ['key server'],
        summary: 'Create an account-owned blob',
        params: z.object({ address: accountIdSchema }),
        body: createBody,
      },
    },
    async (request, reply) => {
      const owner = request.body.data.relationships?.owner.data.id ?? request.params.address;
      if (owner !== request.params.address) throw badRequest('/data/relationships/owner/data/id', 'must be the account in the URL');
      return reply.code(201).send(await create(request, request.body, owner));
    },
  );

  async function readable(request: FastifyRequest, blob: BlobRow | undefined, address?: string): Promise<BlobRow> {
    if (!blob || blob.deletedAt || (address && blob.ownerId !== address)) throw notFound('blob not found');
    if (!isPublic(blob.type)) await accounts.authorize(request, { owner: blob.ownerId, admin: true });
    return blob;
  }
  const findBlob = async (id: string) => {
    const [row] = await db.select().from(ksBlobs).where(eq(ksBlobs.id, id));
    return row && open(row);
  };
  const blobParam = z.string().regex(/^[A-Z2-7]{52}$/, 'invalid blob id');

  routes.get(
    '/blobs/:blobId',
    { schema: { tags: ['key server'], summary: 'Get a blob', params: z.object({ blobId: blobParam }) } },
    async (request) => ({
      data: blobResource(await readable(request, await findBlob(request.params.blobId))),
    }),
  );
  routes.get(
    '/accounts/:address/blobs/:blobId',
    {
      schema: {
        tags: ['key server'],
        summary: 'Get an account-owned blob',
        params: z.object({ address: accountIdSchema, blobId: blobParam }),
      },
    },
    async (request) => ({ data: blobResource(await readable(request, await findBlob(request.params.blobId), request.params.address)) }),
  );

  routes.get(
    '/accounts/:address/blobs',
    {
      schema: {
        tags: ['key server'],
        summary: "An account's blobs (private ones for the owner or admin)",
        params: z.object({ address: accountIdSchema }),
        querystring: z.object({
          'filter[type]': queryInt4(1).optional(),
          type: queryInt4(1).optional(),
          'filter[deleted]': z.enum(['true', 'false']).optional(),
        }),
      },
    },
    async (request) => {
      const privateAllowed = (await accounts.optionalAccess(request, request.params.address)) !== undefined;
      const typeMask = request.query['filter[type]'] ?? request.query.type;
      const rows = await db
        .select()
        .from(ksBlobs)
        .where(
          and(
            eq(ksBlobs.ownerId, request.params.address),
            typeMask ? sql`(${ksBlobs.type} & ${typeMask}) <> 0` : undefined,
            request.query['filter[deleted]'] === 'true' ? undefined : isNull(ksBlobs.deletedAt),
            privateAllowed ? undefined : sql`${ksBlobs.type} <= ${BLOB_TYPES.token_metrics}`,
          ),
        )
        .orderBy(asc(ksBlobs.createdAt), asc(ksBlobs.id))
        .limit(500);
      return { data: rows.map((row) => blobResource(open(row))) };
    },
  );

  routes.delete(
    '/blobs/:blobId',
    {
      schema: {
        response: noContentResponse,
        tags: ['key server'],
        summary: 'Delete a blob (owner or admin)',
        params: z.object({ blobId: blobParam }),
      },
    },
    async (request, reply) => {
      const blob = await findBlob(request.params.blobId);
      if (!blob) {
        await accounts.authorize(request, { admin: true });
        return reply.code(204).send(null);
      }
      await accounts.authorize(request, { owner: blob.ownerId, admin: true });
      await db
        .update(ksBlobs)
        .set({ deletedAt: new Date() })
        .where(and(eq(ksBlobs.id, blob.id), isNull(ksBlobs.deletedAt)));
      return reply.code(204).send(null);
    },
  );
}
