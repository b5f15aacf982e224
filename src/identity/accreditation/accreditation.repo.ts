import { and, asc, desc, eq, inArray, lt, sql } from 'drizzle-orm';
import type { Executor } from '../../platform/db/database.ts';
import { keysetAfter, pageWithTotal, type Page } from '../../platform/db/pages.ts';
import { accreditationDocuments, accreditations } from '../identity.tables.ts';

export type AccreditationRow = typeof accreditations.$inferSelect;
export type DocumentRow = typeof accreditationDocuments.$inferSelect;
export type ReviewStatus = AccreditationRow['reviewStatus'];

export function accreditationRepo(db: Executor) {
  /**
   * The documents of each of `accreditationIds` (each list newest first), in one query: a page's,
   * to present it. An id with no documents has no entry.
   */
  async function documentsOf(accreditationIds: string[], tx: Executor = db): Promise<Map<string, DocumentRow[]>> {
    if (accreditationIds.length === 0) return new Map();
    const rows = await tx
      .select()
      .from(accreditationDocuments)
      .where(inArray(accreditationDocuments.accreditationId, accreditationIds))
      .orderBy(desc(accreditationDocuments.createdAt), desc(accreditationDocuments.id));
    const byAccreditation = new Map<string, DocumentRow[]>();
    for (const row of rows) {
      const list = byAccreditation.get(row.accreditationId);
      if (list) list.push(row);
      else byAccreditation.set(row.accreditationId, [row]);
    }
    return byAccreditation;
  }

  return {
    /** The user's record, created as the baseline `pending` one on first use. */
    async getOrCreate(owner: { orgId: string; userId: string }, tx: Executor = db): Promise<AccreditationRow> {
      await tx
        .insert(accreditations)
        .values({ ...owner, status: 'pending', reviewStatus: 'not_required' })
        .onConflictDoNothing();
      const [row] = await tx
        .select()
        .from(accreditations)
        .where(and(eq(accreditations.orgId, owner.orgId), eq(accreditations.userId, owner.userId)));
      return row!;
    },
    async find(id: string, tx: Executor = db): Promise<AccreditationRow | undefined> {
      const [row] = await tx.select().from(accreditations).where(eq(accreditations.id, id));
      return row;
    },
    async findForUser(orgId: string, userId: string, tx: Executor = db): Promise<AccreditationRow | undefined> {
      const [row] = await tx
        .select()
        .from(accreditations)
        .where(and(eq(accreditations.orgId, orgId), eq(accreditations.userId, userId)));
      return row;
    },
    /** Approved accreditations past their end date, oldest first, at most `limit` (the expiry sweep's batch). */
    async dueToExpire(limit: number, tx: Executor = db): Promise<AccreditationRow[]> {
      return tx
        .select()
        .from(accreditations)
        .where(and(eq(accreditations.reviewStatus, 'approved'), lt(accreditations.expiresAt, sql`now()`)))
        .orderBy(asc(accreditations.expiresAt))
        .limit(limit);
    },
    async lock(id: string, tx: Executor): Promise<AccreditationRow | undefined> {
      const [row] = await tx.select().from(accreditations).where(eq(accreditations.id, id)).for('update');
      return row;
    },
    async update(id: string, changes: Partial<typeof accreditations.$inferInsert>, tx: Executor = db): Promise<AccreditationRow> {
      const [row] = await tx
        .update(accreditations)
        .set({ ...changes, updatedAt: new Date() })
        .where(eq(accreditations.id, id))
        .returning();
      return row!;
    },
    /**
     * One page of the review queue, oldest submission first (ties by id), with the total counted up
     * to `TOTAL_CAP` (see `pageWithTotal`). `paging.after`: the last id of the previous page (see
     * `cursorPagingQuery`); a cursor naming no accreditation of `filter.orgId` gives an empty page.
     */
    async listForReview(
      filter: { orgId?: string; reviewStatus: ReviewStatus },
      paging: { limit: number; offset: number; after?: string },
      tx: Executor = db,
    ): Promise<Page<AccreditationRow>> {
      const where = and(
        filter.orgId ? eq(accreditations.orgId, filter.orgId) : undefined,
        eq(accreditations.reviewStatus, filter.reviewStatus),
      );
      const after = keysetAfter(
        { sort: accreditations.submittedAt, id: accreditations.id, direction: 'asc', nullable: true },
        paging.after,
        filter.orgId ? eq(accreditations.orgId, filter.orgId) : undefined,
      );
      const rows = await tx
        .select()
        .from(accreditations)
        .where(and(where, after))
        .orderBy(asc(accreditations.submittedAt), asc(accreditations.id))
        .limit(paging.limit + 1)
        .offset(after ? 0 : paging.offset);
      return pageWithTotal(tx, rows, paging, { from: accreditations, where });
    },
    async insertDocument(row: typeof accreditationDocuments.$inferInsert, tx: Executor = db): Promise<DocumentRow> {
      const [inserted] = await tx.insert(accreditationDocuments).values(row).returning();
      return inserted!;
    },
    async lockDocument(id: string, tx: Executor): Promise<DocumentRow | undefined> {
      const [row] = await tx.select().from(accreditationDocuments).where(eq(accreditationDocuments.id, id)).for('update');
      return row;
    },
    async findDocument(id: string, tx: Executor = db): Promise<DocumentRow | undefined> {
      const [row] = await tx.select().from(accreditationDocuments).where(eq(accreditationDocuments.id, id));
      return row;
    },
    async updateDocument(
      id: string,
      changes: Partial<typeof accreditationDocuments.$inferInsert>,
      tx: Executor = db,
    ): Promise<DocumentRow> {
      const [row] = await tx.update(accreditationDocuments).set(changes).where(eq(accreditationDocuments.id, id)).returning();
      return row!;
    },
    /** An accreditation's documents, newest first. */
    async documents(accreditationId: string, tx: Executor = db): Promise<DocumentRow[]> {
      return (await documentsOf([accreditationId], tx)).get(accreditationId) ?? [];
    },
    documentsOf,
  };
}

export type AccreditationRepo = ReturnType<typeof accreditationRepo>;
