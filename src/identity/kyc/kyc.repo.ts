import { and, desc, eq, inArray, isNull, lt, sql } from 'drizzle-orm';
import type { PgInsertValue } from 'drizzle-orm/pg-core';
import type { Executor } from '../../platform/db/database.ts';
import { keysetAfter, pageWithTotal, type Page } from '../../platform/db/pages.ts';
import { kycVerifications } from '../identity.tables.ts';

export type KycRow = typeof kycVerifications.$inferSelect;
export type KycStatus = KycRow['status'];
export const OPEN_STATUSES: KycStatus[] = ['pending', 'action_required', 'needs_review'];
const EXPIRABLE: KycStatus[] = ['pending', 'action_required'];

export function kycRepo(db: Executor) {
  return {
    async insert(row: PgInsertValue<typeof kycVerifications>, tx: Executor = db): Promise<KycRow> {
      const [inserted] = await tx.insert(kycVerifications).values(row).returning();
      return inserted!;
    },
    async find(id: string, tx: Executor = db): Promise<KycRow | undefined> {
      const [row] = await tx.select().from(kycVerifications).where(eq(kycVerifications.id, id));
      return row;
    },
    async lock(id: string, tx: Executor): Promise<KycRow | undefined> {
      const [row] = await tx.select().from(kycVerifications).where(eq(kycVerifications.id, id)).for('update');
      return row;
    },
    async findByReference(provider: string, reference: string, tx: Executor = db): Promise<KycRow | undefined> {
      const [row] = await tx
        .select()
        .from(kycVerifications)
        .where(and(eq(kycVerifications.provider, provider), eq(kycVerifications.providerReference, reference)));
      return row;
    },
    async update(id: string, changes: Partial<typeof kycVerifications.$inferInsert>, tx: Executor = db): Promise<KycRow> {
      const [row] = await tx
        .update(kycVerifications)
        .set({ ...changes, updatedAt: new Date() })
        .where(eq(kycVerifications.id, id))
        .returning();
      return row!;
    },
    async listForUser(userId: string, tx: Executor = db): Promise<KycRow[]> {
      return tx
        .select()
        .from(kycVerifications)
        .where(eq(kycVerifications.userId, userId))
        .orderBy(desc(kycVerifications.createdAt), desc(kycVerifications.id));
    },
    /**
     * One page of verifications, newest first (ties by id), with the total counted up to
     * `TOTAL_CAP` (see `pageWithTotal`). `paging.after`: the last id of the previous page (see
     * `cursorPagingQuery`); a cursor naming no verification of `filter.orgId` gives an empty page.
     */
    async listForOrg(
      filter: { orgId?: string; userId?: string; status?: KycStatus },
      paging: { limit: number; offset: number; after?: string },
      tx: Executor = db,
    ): Promise<Page<KycRow>> {
      const where = and(
        filter.orgId ? eq(kycVerifications.orgId, filter.orgId) : undefined,
        filter.userId ? eq(kycVerifications.userId, filter.userId) : undefined,
        filter.status ? eq(kycVerifications.status, filter.status) : undefined,
      );
      const after = keysetAfter(
        { sort: kycVerifications.createdAt, id: kycVerifications.id, direction: 'desc' },
        paging.after,
        filter.orgId ? eq(kycVerifications.orgId, filter.orgId) : undefined,
      );
      const rows = await tx
        .select()
        .from(kycVerifications)
        .where(and(where, after))
        .orderBy(desc(kycVerifications.createdAt), desc(kycVerifications.id))
        .limit(paging.limit + 1)
        .offset(after ? 0 : paging.offset);
      return pageWithTotal(tx, rows, paging, { from: kycVerifications, where });
    },
    /** The user's verification still in progress (pending, action_required or needs_review), if any. */
    async openForUser(userId: string, tx: Executor = db): Promise<KycRow | undefined> {
      const [row] = await tx
        .select()
        .from(kycVerifications)
        .where(and(eq(kycVerifications.userId, userId), inArray(kycVerifications.status, OPEN_STATUSES)));
      return row;
    },
    /**
     * Closes work nobody will finish: checks past their expiry become `expired`, and submissions
     * whose request died before the provider answered (still `pending`, no provider reference, the
     * submitting request's lease over) become `error`, so the user can start again. Returns the
     * rows it closed, as they are now, so the caller can publish their transitions in `tx`.
     * Concurrent sweeps close each row once (the second update re-checks the status it waited on).
     */
    async sweep(filter: { userId?: string; orgId?: string; id?: string }, tx: Executor = db): Promise<KycRow[]> {
      const scope = [
        filter.userId ? eq(kycVerifications.userId, filter.userId) : undefined,
        filter.orgId ? eq(kycVerifications.orgId, filter.orgId) : undefined,
        filter.id ? eq(kycVerifications.id, filter.id) : undefined,
      ];
      const expired = await tx
        .update(kycVerifications)
        .set({ status: 'expired', requiredAction: null, completedAt: sql`now()`, updatedAt: sql`now()` })
        .where(and(inArray(kycVerifications.status, EXPIRABLE), lt(kycVerifications.expiresAt, sql`now()`), ...scope))
        .returning();
      const failed = await tx
        .update(kycVerifications)
        .set({
          status: 'error',
          identityCheck: 'not_attempted',
          submitLeaseUntil: null,
          completedAt: sql`now()`,
          updatedAt: sql`now()`,
        })
        .where(
          and(
            eq(kycVerifications.status, 'pending'),
            isNull(kycVerifications.providerReference),
            lt(kycVerifications.submitLeaseUntil, sql`now()`),
            ...scope,
          ),
        )
        .returning();
      return [...expired, ...failed];
    },
  };
}

export type KycRepo = ReturnType<typeof kycRepo>;
