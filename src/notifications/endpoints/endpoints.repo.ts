import { and, arrayOverlaps, desc, eq, gt, inArray, isNull, or, sql } from 'drizzle-orm';
import type { Sealed } from '../../platform/crypto/envelope.ts';
import type { Executor } from '../../platform/db/database.ts';
import { pageWithTotal, type Page } from '../../platform/db/pages.ts';
import { webhookDeliveries, webhookEndpoints, webhookSecrets } from '../notifications.tables.ts';

export type EndpointRow = typeof webhookEndpoints.$inferSelect;
export type SecretRow = typeof webhookSecrets.$inferSelect;

const bumpedVersion = sql`${webhookEndpoints.version} + 1`;

export function endpointsRepo(db: Executor) {
  return {
    async insert(row: typeof webhookEndpoints.$inferInsert, secret: Sealed & { id: string }, tx: Executor): Promise<EndpointRow> {
      const [endpoint] = await tx.insert(webhookEndpoints).values(row).returning();
      await tx.insert(webhookSecrets).values({ ...secret, endpointId: endpoint!.id });
      return endpoint!;
    },
    async find(orgId: string, id: string, tx: Executor = db): Promise<EndpointRow | undefined> {
      const [row] = await tx
        .select()
        .from(webhookEndpoints)
        .where(and(eq(webhookEndpoints.orgId, orgId), eq(webhookEndpoints.id, id)));
      return row;
    },
    async findById(id: string, tx: Executor = db): Promise<EndpointRow | undefined> {
      const [row] = await tx.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id));
      return row;
    },
    async findMany(ids: string[], tx: Executor = db): Promise<EndpointRow[]> {
      return ids.length === 0 ? [] : tx.select().from(webhookEndpoints).where(inArray(webhookEndpoints.id, ids));
    },
    async lock(id: string, tx: Executor): Promise<EndpointRow | undefined> {
      const [row] = await tx.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id)).for('update');
      return row;
    },
    /** One page of the org's endpoints, newest first, with the total counted up to `TOTAL_CAP` (see `pageWithTotal`). */
    async list(orgId: string, paging: { limit: number; offset: number }, tx: Executor = db): Promise<Page<EndpointRow>> {
      const where = eq(webhookEndpoints.orgId, orgId);
      const rows = await tx
        .select()
        .from(webhookEndpoints)
        .where(where)
        .orderBy(desc(webhookEndpoints.createdAt), desc(webhookEndpoints.id))
        .limit(paging.limit + 1)
        .offset(paging.offset);
      return pageWithTotal(tx, rows, paging, { from: webhookEndpoints, where });
    },
    /** Any change bumps `version`, which the dispatcher's secret cache is keyed on. */
    async update(id: string, changes: Partial<typeof webhookEndpoints.$inferInsert>, tx: Executor = db): Promise<EndpointRow> {
      const [row] = await tx
        .update(webhookEndpoints)
        .set({ ...changes, version: bumpedVersion, updatedAt: new Date() })
        .where(eq(webhookEndpoints.id, id))
        .returning();
      return row!;
    },
    async delete(id: string, tx: Executor = db): Promise<void> {
      await tx.delete(webhookEndpoints).where(eq(webhookEndpoints.id, id));
    },
    /** The secrets that sign now: the current one and rotated ones still in their grace period. */
    async activeSecrets(endpointId: string, now: Date, tx: Executor = db): Promise<SecretRow[]> {
      return tx
        .select()
        .from(webhookSecrets)
        .where(and(eq(webhookSecrets.endpointId, endpointId), or(isNull(webhookSecrets.expiresAt), gt(webhookSecrets.expiresAt, now))))
        .orderBy(desc(webhookSecrets.createdAt));
    },
    /**
     * Retires the current secret (until `previousExpiresAt`, or at once when null) and adds `secret`;
     * bumps the endpoint's `version`, so a dispatcher holding the old secrets unsealed drops them.
     */
    async rotateSecret(endpointId: string, secret: Sealed & { id: string }, previousExpiresAt: Date | null, tx: Executor): Promise<void> {
      const current = and(eq(webhookSecrets.endpointId, endpointId), isNull(webhookSecrets.expiresAt));
      if (previousExpiresAt === null) await tx.delete(webhookSecrets).where(current);
      else await tx.update(webhookSecrets).set({ expiresAt: previousExpiresAt }).where(current);
      await tx.insert(webhookSecrets).values({ ...secret, endpointId });
      await tx.update(webhookEndpoints).set({ version: bumpedVersion, updatedAt: new Date() }).where(eq(webhookEndpoints.id, endpointId));
    },
    /** The org's endpoints subscribed to `eventType` (or to `*`), active and disabled alike. */
    async subscribed(orgId: string, eventType: string, tx: Executor): Promise<EndpointRow[]> {
      return tx
        .select()
        .from(webhookEndpoints)
        .where(and(eq(webhookEndpoints.orgId, orgId), arrayOverlaps(webhookEndpoints.eventTypes, [eventType, '*'])));
    },
    /** Stops what is queued for a disabled endpoint. */
    async cancelPending(endpointId: string, tx: Executor): Promise<void> {
      await tx
        .update(webhookDeliveries)
        .set({ status: 'cancelled', nextAttemptAt: null, leaseUntil: null, updatedAt: new Date() })
        .where(and(eq(webhookDeliveries.endpointId, endpointId), eq(webhookDeliveries.status, 'pending')));
    },
  };
}

export type EndpointsRepo = ReturnType<typeof endpointsRepo>;
