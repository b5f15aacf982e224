import { z } from 'zod';
import type { ApiKeyPrincipal } from '../../platform/auth/principal.ts';
import { keyedHash } from '../../platform/crypto/envelope.ts';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import { randomBase62 } from '../../platform/crypto/random.ts';
import type { AuditWriter } from '../../platform/audit/audit.service.ts';
import type { Actor } from '../../platform/audit/context.ts';
import type { Db } from '../../platform/db/database.ts';
import { AppError } from '../../platform/http/errors.ts';
import { assertOutboundUrl } from '../../platform/http/urls.ts';
import { emailDigest } from '../at-rest.ts';
import type { OrgRow, OrgsRepo } from './orgs.repo.ts';

const API_KEY_PATTERN = /^rialto_ak_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_([0-9A-Za-z]{32})$/;

export const orgInputSchema = z
  .object({
    name: z.string().trim().min(1).max(200),
    idpIssuer: z.url().optional(),
    idpJwksUrl: z.url().optional(),
    idpAudience: z.string().min(1).max(500),
    adminEmails: z.array(z.email()).default([]),
    redirectOrigins: z.array(z.string()).default([]),
  })
  // An org registered by JWKS URL still names its issuer: every ID token's `iss` is checked
  // against it, or any token signed by keys at that URL (another tenant of the same IdP) would pass.
  .refine((org) => org.idpIssuer !== undefined, {
    message: 'register the identity provider by its issuer URL (also when a JWKS URL is given)',
    path: ['idpIssuer'],
  });
export type OrgInput = z.input<typeof orgInputSchema>;

/**
 * Each entry as its origin (`https://app.example.com`, no path, no trailing slash): https, or http
 * only when insecure URLs are allowed (development mode). Throws VALIDATION_ERROR naming the entry.
 */
function redirectOrigins(values: string[], allowHttp: boolean): string[] {
  const origins = values.map((value, index) => {
    const field = `redirectOrigins.${index}`;
    const refuse = (message: string) => {
      throw new AppError('VALIDATION_ERROR', `${field}: ${message}`, [{ field, message }]);
    };
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return refuse('must be an origin such as https://app.example.com');
    }
    if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:'))
      refuse(allowHttp ? 'must be an http or https origin' : 'must be an https origin');
    if (url.username || url.password || url.pathname !== '/' || url.search || url.hash)
      refuse('must be an origin only (scheme, host and port), such as https://app.example.com');
    return url.origin;
  });
  return [...new Set(origins)];
}

export type CreatedApiKey = { id: string; orgId: string; key: string; hint: string };

/** Who ran a command-line action: the operator at the server (platform staff). */
const CLI_ACTOR: Actor = { kind: 'platform_staff', id: 'cli' };

export function orgsService(deps: { db: Db; repo: OrgsRepo; keyring: Keyring; allowInsecureHttp: boolean; audit: AuditWriter }) {
  const { db, repo, keyring, audit } = deps;

  return {
    async createOrg(input: OrgInput): Promise<OrgRow> {
      const parsed = orgInputSchema.safeParse(input);
      if (!parsed.success) {
        const details = parsed.error.issues.map((issue) => ({ field: issue.path.join('.'), message: issue.message }));
        throw new AppError('VALIDATION_ERROR', details.map((d) => `${d.field}: ${d.message}`).join('; '), details);
      }
      const org = parsed.data;
      if (org.idpIssuer) assertOutboundUrl(org.idpIssuer, 'idpIssuer', deps.allowInsecureHttp);
      if (org.idpJwksUrl) assertOutboundUrl(org.idpJwksUrl, 'idpJwksUrl', deps.allowInsecureHttp);
      return repo.insert({
        name: org.name,
        // Exactly as the IdP states it (Auth0 issuers end in a slash; OIDC compares issuers exactly).
        idpIssuer: org.idpIssuer ?? null,
        idpJwksUrl: org.idpJwksUrl ?? null,
        idpAudience: org.idpAudience,
        // Only keyed hashes: the list is checked at sign-in and shown nowhere.
        adminEmailDigests: [...new Set(org.adminEmails.map((email) => emailDigest(keyring, email)))],
        redirectOrigins: redirectOrigins(org.redirectOrigins, deps.allowInsecureHttp),
      });
    },

    /**
     * Replaces the org's allowed redirect origins (an empty list leaves only CHECKOUT_RETURN_ORIGINS).
     * Throws VALIDATION_ERROR for an entry that is not an https origin, NOT_FOUND for an unknown org.
     * Audited as `org.redirect_origins_changed` (actor: `actor`, default the CLI).
     */
    async setRedirectOrigins(orgId: string, origins: string[], actor: Actor = CLI_ACTOR): Promise<OrgRow> {
      const normalized = redirectOrigins(origins, deps.allowInsecureHttp);
      if (!z.uuid().safeParse(orgId).success) throw new AppError('NOT_FOUND', `org ${orgId} not found`);
      return db.transaction(async (tx) => {
        const before = await repo.findById(orgId, tx);
        const updated = await repo.update(orgId, { redirectOrigins: normalized }, tx);
        if (!before || !updated) throw new AppError('NOT_FOUND', `org ${orgId} not found`);
        await audit.record(tx, {
          orgId,
          action: 'org.redirect_origins_changed',
          subject: { type: 'org', id: orgId },
          before: { redirectOrigins: before.redirectOrigins },
          after: { redirectOrigins: updated.redirectOrigins },
          details: { redirect_origins: updated.redirectOrigins.join(',') },
          actor,
        });
        return updated;
      });
    },

    getOrg: (id: string) => repo.findById(id),
    listOrgs: () => repo.list(),

    /** An org's API keys with their hints (never the keys); throws NOT_FOUND for an unknown org. */
    async listApiKeys(orgId: string) {
      if (!z.uuid().safeParse(orgId).success)
        throw new AppError('VALIDATION_ERROR', 'org: must be an org id (UUID)', [{ field: 'org', message: 'must be a UUID' }]);
      if (!(await repo.findById(orgId))) throw new AppError('NOT_FOUND', `org ${orgId} not found`);
      return repo.listApiKeys(orgId);
    },
    countOrgs: () => repo.count(),

    /** The key is returned once; only its keyed digest is stored. Audited as `api_key.created` (actor: `actor`, default the CLI). */
    async createApiKey(orgId: string, label?: string, actor: Actor = CLI_ACTOR): Promise<CreatedApiKey> {
      if (!(await repo.findById(orgId))) throw new AppError('NOT_FOUND', `org ${orgId} not found`);
      const key = `rialto_ak_${orgId}_${randomBase62(32)}`;
      const hint = `rialto_ak_${orgId}_…${key.slice(-4)}`;
      const row = await db.transaction(async (tx) => {
        const inserted = await repo.insertApiKey({ orgId, digest: keyedHash(keyring, 'api-key', key), hint, label: label ?? null }, tx);
        await audit.record(tx, {
          orgId,
          action: 'api_key.created',
          subject: { type: 'api_key', id: inserted.id },
          after: { digest: inserted.digest, label: inserted.label },
          actor,
        });
        return inserted;
      });
      return { id: row.id, orgId, key, hint };
    },

    /** Audited as `api_key.revoked`; throws NOT_FOUND for an unknown or already revoked key. */
    async revokeApiKey(apiKeyId: string, actor: Actor = CLI_ACTOR): Promise<void> {
      await db.transaction(async (tx) => {
        const row = await repo.revokeApiKey(apiKeyId, tx);
        if (!row) throw new AppError('NOT_FOUND', `active API key ${apiKeyId} not found`);
        await audit.record(tx, { orgId: row.orgId, action: 'api_key.revoked', subject: { type: 'api_key', id: row.id }, actor });
      });
    },

    /** A platform administrator's key, for back-office routes across orgs. Shown once. Audited as `admin_key.created`. */
    async createAdminKey(label?: string, actor: Actor = CLI_ACTOR): Promise<{ id: string; key: string }> {
      const key = `tranche_admin_${randomBase62(40)}`;
      const row = await db.transaction(async (tx) => {
        const inserted = await repo.insertAdminKey({ digest: keyedHash(keyring, 'admin-key', key), label: label ?? null }, tx);
        await audit.record(tx, { orgId: null, action: 'admin_key.created', subject: { type: 'admin_key', id: inserted.id }, actor });
        return inserted;
      });
      return { id: row.id, key };
    },

    async authenticateAdminKey(key: string): Promise<{ adminKeyId: string } | null> {
      if (!/^tranche_admin_[0-9A-Za-z]{40}$/.test(key)) return null;
      const row = await repo.findActiveAdminKeyByDigest(keyedHash(keyring, 'admin-key', key));
      return row ? { adminKeyId: row.id } : null;
    },

    async authenticateApiKey(key: string): Promise<ApiKeyPrincipal | null> {
      const match = API_KEY_PATTERN.exec(key);
      if (!match) return null;
      const row = await repo.findActiveApiKeyByDigest(keyedHash(keyring, 'api-key', key));
      if (!row || row.orgId !== match[1]) return null;
      return { kind: 'api_key', orgId: row.orgId, apiKeyId: row.id };
    },
  };
}

export type OrgsService = ReturnType<typeof orgsService>;
