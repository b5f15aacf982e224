import { and, asc, eq, isNull } from 'drizzle-orm';
import type { Executor } from '../../platform/db/database.ts';
import { adminKeys, apiKeys, orgs } from '../identity.tables.ts';

export type OrgRow = typeof orgs.$inferSelect;
export type NewOrg = typeof orgs.$inferInsert;
export type ApiKeyRow = typeof apiKeys.$inferSelect;

export function orgsRepo(db: Executor) {
  return {
    async insert(org: NewOrg, tx: Executor = db): Promise<OrgRow> {
      const [row] = await tx.insert(orgs).values(org).returning();
      return row!;
    },
    async update(id: string, changes: Partial<Pick<NewOrg, 'redirectOrigins'>>, tx: Executor = db): Promise<OrgRow | undefined> {
      const [row] = await tx
        .update(orgs)
        .set({ ...changes, updatedAt: new Date() })
        .where(eq(orgs.id, id))
        .returning();
      return row;
    },
    async findById(id: string, tx: Executor = db): Promise<OrgRow | undefined> {
      const [row] = await tx.select().from(orgs).where(eq(orgs.id, id));
      return row;
    },
    /** Every org, oldest first (an operator's listing; there are few). */
    async list(tx: Executor = db): Promise<OrgRow[]> {
      return tx.select().from(orgs).orderBy(asc(orgs.createdAt), asc(orgs.id));
    },
    /** An org's API keys, revoked ones included, oldest first; digests are not returned. */
    async listApiKeys(orgId: string, tx: Executor = db): Promise<Omit<ApiKeyRow, 'digest'>[]> {
      return tx
        .select({
          id: apiKeys.id,
          orgId: apiKeys.orgId,
          hint: apiKeys.hint,
          label: apiKeys.label,
          createdAt: apiKeys.createdAt,
          revokedAt: apiKeys.revokedAt,
        })
        .from(apiKeys)
        .where(eq(apiKeys.orgId, orgId))
        .orderBy(asc(apiKeys.createdAt), asc(apiKeys.id));
    },
    async count(tx: Executor = db): Promise<number> {
      return tx.$count(orgs);
    },
    async insertApiKey(key: typeof apiKeys.$inferInsert, tx: Executor = db): Promise<ApiKeyRow> {
      const [row] = await tx.insert(apiKeys).values(key).returning();
      return row!;
    },
    async findActiveApiKeyByDigest(digest: string, tx: Executor = db): Promise<ApiKeyRow | undefined> {
      const [row] = await tx
        .select()
        .from(apiKeys)
        .where(and(eq(apiKeys.digest, digest), isNull(apiKeys.revokedAt)));
      return row;
    },
    async insertAdminKey(key: typeof adminKeys.$inferInsert, tx: Executor = db) {
      const [row] = await tx.insert(adminKeys).values(key).returning();
      return row!;
    },
    async findActiveAdminKeyByDigest(digest: string, tx: Executor = db) {
      const [row] = await tx
        .select()
        .from(adminKeys)
        .where(and(eq(adminKeys.digest, digest), isNull(adminKeys.revokedAt)));
      return row;
    },
    async revokeApiKey(id: string, tx: Executor = db): Promise<ApiKeyRow | undefined> {
      const [row] = await tx
        .update(apiKeys)
        .set({ revokedAt: new Date() })
        .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
        .returning();
      return row;
    },
  };
}

export type OrgsRepo = ReturnType<typeof orgsRepo>;
