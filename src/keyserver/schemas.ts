import { StrKey } from '@stellar/stellar-base';
import { z } from 'zod';
import { INT4_MAX, queryInt4 } from '../platform/http/integers.ts';

export const accountIdSchema = z.string().refine((value) => StrKey.isValidEd25519PublicKey(value), 'must be a valid account id');
export const walletIdSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex characters');
export const emailSchema = z
  .email('must be a valid email address')
  .max(254)
  .transform((value) => value.toLowerCase());
/** Any JSON value (identity settings); named so that its recursion resolves in the OpenAPI document. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export const jsonValueSchema: z.ZodType<JsonValue> = z
  .lazy(() => z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(jsonValueSchema), z.record(z.string(), jsonValueSchema)]))
  .meta({ id: 'JsonValue' });
export const phoneSchema = z.string().regex(/^\+[1-9]\d{6,14}$/, 'must be an E.164 phone number');

export const signerResourceSchema = z.object({
  type: z.literal('signer'),
  id: accountIdSchema,
  attributes: z.object({
    role_id: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    weight: queryInt4(0, 1000).default(1000),
    identity: queryInt4(0).default(0),
    details: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
  }),
});

export type SignerResource = z.infer<typeof signerResourceSchema>;

export const toNewSigner = (signer: SignerResource) => ({
  publicKey: signer.id,
  roleId: signer.attributes.role_id,
  weight: signer.attributes.weight,
  identity: signer.attributes.identity,
  details: typeof signer.attributes.details === 'string' ? signer.attributes.details : JSON.stringify(signer.attributes.details ?? {}),
});

/** Offset paging as TokenD's clients send it: `page[number]` (zero-based), `page[limit]`. */
/** The response of a key-server route that answers 204 with no body (as TokenD's does). */
export const noContentResponse = { 204: z.null().describe('No content') };

export const pageQuery = {
  'page[number]': queryInt4(0, Math.floor(INT4_MAX / 100)).default(0),
  'page[limit]': queryInt4(1, 100).default(15),
};

export function pageLinks(path: string, query: Record<string, unknown>, page: number, limit: number, hasMore: boolean) {
  const link = (number: number) => {
    const params = Object.entries(query)
      .filter(([key, value]) => value !== undefined && !key.startsWith('page['))
      .map(([key, value]) => `${key}=${encodeURIComponent(String(value))}`);
    return `${path}?${[...params, `page[number]=${number}`, `page[limit]=${limit}`].join('&')}`;
  };
  return { self: link(page), ...(hasMore ? { next: link(page + 1) } : {}), ...(page > 0 ? { prev: link(page - 1) } : {}) };
}
