import { createHash, randomBytes } from 'node:crypto';
import { and, eq, isNull } from 'drizzle-orm';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Db } from '../../platform/db/database.ts';
import { MAX_UPLOAD_BYTES, type ObjectStorage } from '../../platform/storage/storage.ts';
import type { AccountsService } from '../accounts/accounts.service.ts';
import { badRequest, notFound } from '../jsonapi.ts';
import { ksDocuments } from '../keyserver.tables.ts';
import { accountIdSchema } from '../schemas.ts';

/** Document types are bit flags (research/tokend.md §1.5). */
export const DOCUMENT_TYPES: Record<string, number> = {
  asset_logo: 1,
  fund_logo: 2,
  fund_document: 4,
  nav_report: 8,
  alpha: 16,
  bravo: 32,
  charlie: 64,
  delta: 128,
  token_terms: 256,
  token_metrics: 512,
  kyc_id_document: 1024,
  kyc_poa: 2048,
  kyc_selfie: 4096,
  general_public: 16384,
  general_private: 32768,
  asset_photo: 65536,
};
const ALLOWED_MEDIA_TYPES = new Set(['application/pdf', 'image/jpeg', 'image/png', 'image/tiff', 'image/gif', 'image/webp']);
const POLICY_TTL_SECONDS = 3600;
const URL_TTL_SECONDS = 3600;

export async function documentsRoutes(app: FastifyInstance, options: { db: Db; accounts: AccountsService; storage: ObjectStorage }) {
  const { db, accounts, storage } = options;
  const routes = app.withTypeProvider<ZodTypeProvider>();

  const body = z.object({
    data: z.object({
      type: z.string().refine((type) => Object.hasOwn(DOCUMENT_TYPES, type), 'invalid document type'),
      attributes: z.object({ content_type: z.string().max(100) }),
      relationships: z.object({ owner: z.object({ data: z.object({ id: accountIdSchema }) }) }).optional(),
    }),
  });

  async function uploadPolicy(request: FastifyRequest, input: z.infer<typeof body>, owner: string | undefined) {
    if (!owner) throw badRequest('/data/relationships/owner/data/id', 'cannot be blank');
    await accounts.authorize(request, { owner, admin: true });
    const contentType = input.data.attributes.content_type.toLowerCase();
    if (!ALLOWED_MEDIA_TYPES.has(contentType)) throw badRequest('/data/attributes/content_type', 'not allowed');
    const key = `ksdoc-${randomBytes(20).toString('hex')}`;
    const post = await storage.presignPost(key, { contentType, maxBytes: MAX_UPLOAD_BYTES, expiresInSeconds: POLICY_TTL_SECONDS });
    await db.insert(ksDocuments).values({ key, type: DOCUMENT_TYPES[input.data.type]!, ownerId: owner, contentType });
    // Clients post every attribute but url, id and type back as a (kebab-case) form field.
    const fields = Object.fromEntries(Object.entries(post.fields).map(([name, value]) => [name.toLowerCase(), value]));
    return { data: { type: 'upload_policy', id: key, attributes: { url: post.url, ...fields, key } } };
  }

  routes.post(
    '/documents',
    { schema: { tags: ['key server'], summary: 'Upload policy for a document (owner or admin)', body } },
    async (request) => uploadPolicy(request, request.body, request.body.data.relationships?.owner.data.id),
  );
  routes.post(
    '/accounts/:address/documents',
    {
      schema: {
        tags: ['key server'],
        summary: 'Upload policy for an account document',
        params: z.object({ address: accountIdSchema }),
        body,
      },
    },
    async (request) => uploadPolicy(request, request.body, request.params.address),
  );

  /**
   * The upload policy stays valid for an hour, so the object under `key` can still be replaced.
   * The first read therefore copies it (with its SHA-256 and size) to a key no policy reaches, and
   * every read, that one included, serves the copy: whoever reviews the document reads what was
   * first read, never a later replacement.
   */
  async function sealedCopy(document: typeof ksDocuments.$inferSelect): Promise<string> {
    if (document.sealedKey) return document.sealedKey;
    const object = await storage.get(document.key);
    if (!object) throw notFound('document was not uploaded');
    const sha256 = createHash('sha256').update(object.body).digest('hex');
    const sealedKey = `ksdoc-sealed/${document.key}/${sha256}`;
    await storage.put(sealedKey, object.body, document.contentType);
    const [sealed] = await db
      .update(ksDocuments)
      .set({ sealedKey, sha256, sizeBytes: object.size })
      .where(and(eq(ksDocuments.key, document.key), isNull(ksDocuments.sealedKey)))
      .returning({ sealedKey: ksDocuments.sealedKey });
    if (sealed?.sealedKey) return sealed.sealedKey;
    // A concurrent first read sealed it first: serve that copy.
    const [winner] = await db.select({ sealedKey: ksDocuments.sealedKey }).from(ksDocuments).where(eq(ksDocuments.key, document.key));
    return winner?.sealedKey ?? sealedKey;
  }

  async function documentUrl(request: FastifyRequest, key: string, address?: string) {
    const [document] = await db.select().from(ksDocuments).where(eq(ksDocuments.key, key));
    if (!document || (address && document.ownerId !== address)) throw notFound('document not found');
    await accounts.authorize(request, { owner: document.ownerId, admin: true });
    const sealedKey = await sealedCopy(document);
    return {
      data: {
        type: 'document_url',
        id: key,
        attributes: { url: await storage.presignGet(sealedKey, { expiresInSeconds: URL_TTL_SECONDS }) },
      },
    };
  }
  const keyParam = z.string().regex(/^ksdoc-[0-9a-f]{40}$/, 'invalid document key');
  routes.get(
    '/documents/:key',
    { schema: { tags: ['key server'], summary: 'Download URL of a document', params: z.object({ key: keyParam }) } },
    async (request) => documentUrl(request, request.params.key),
  );
  routes.get(
    '/accounts/:address/documents/:key',
    {
      schema: {
        tags: ['key server'],
        summary: 'Download URL of an account document',
        params: z.object({ address: accountIdSchema, key: keyParam }),
      },
    },
    async (request) => documentUrl(request, request.params.key, request.params.address),
  );
}
