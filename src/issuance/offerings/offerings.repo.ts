import { and, asc, desc, eq, inArray, max, ne, sql, type SQL } from 'drizzle-orm';
import type { Executor } from '../../platform/db/database.ts';
import { pageWithTotal, type Page } from '../../platform/db/pages.ts';
import { issuers, offeringDocuments, offerings, securityClasses } from '../issuance.tables.ts';

export type OfferingRow = typeof offerings.$inferSelect;
export type SecurityRow = typeof securityClasses.$inferSelect;
export type DocumentRow = typeof offeringDocuments.$inferSelect;
export type IssuerRow = typeof issuers.$inferSelect;
export type OfferingStatus = OfferingRow['status'];

/** Subscription statuses that hold units: everything but rejected and cancelled. */
export const HOLDING_STATUSES = ['draft', 'pending_signature', 'pending_payment', 'pending_review', 'approved', 'completed'] as const;
/** Subscription statuses whose money has arrived. */
export const FUNDED_STATUSES = ['pending_review', 'approved', 'completed'] as const;

/** An offering's committed and raised amounts (cents) and its investor counts (those with a subscription that holds units). */
export type OfferingTotals = { committedCents: number; raisedCents: number; investors: number; accredited: number; nonAccredited: number };

/** The offering's running totals (kept on its row by `totals.repo.ts`), as the list and get show them. */
export function totalsOf(row: OfferingRow): OfferingTotals {
  return {
    committedCents: row.committedCents,
    raisedCents: row.raisedCents,
    investors: row.investors,
    accredited: row.accreditedInvestors,
    nonAccredited: row.investors - row.accreditedInvestors,
  };
}

const sortColumns = {
  created_at: offerings.createdAt,
  deadline: offerings.deadline,
  name: offerings.name,
  target_amount: offerings.targetAmountCents,
  opened_at: offerings.openedAt,
} as const;
export type OfferingSort = keyof typeof sortColumns;

export function offeringsRepo(db: Executor) {
  return {
    async insertIssuer(row: typeof issuers.$inferInsert, tx: Executor = db): Promise<IssuerRow> {
      const [issuer] = await tx.insert(issuers).values(row).returning();
      return issuer!;
    },
    async findIssuer(id: string, tx: Executor = db): Promise<IssuerRow | undefined> {
      const [row] = await tx.select().from(issuers).where(eq(issuers.id, id));
      return row;
    },
    async issuersById(ids: string[], tx: Executor = db): Promise<Map<string, IssuerRow>> {
      if (ids.length === 0) return new Map();
      const rows = await tx.select().from(issuers).where(inArray(issuers.id, ids));
      return new Map(rows.map((row) => [row.id, row]));
    },
    async insert(row: typeof offerings.$inferInsert, tx: Executor = db): Promise<OfferingRow> {
      const [offering] = await tx.insert(offerings).values(row).returning();
      return offering!;
    },
    async find(orgId: string | undefined, id: string, tx: Executor = db): Promise<OfferingRow | undefined> {
      const [row] = await tx
        .select()
        .from(offerings)
        .where(and(eq(offerings.id, id), orgId ? eq(offerings.orgId, orgId) : undefined));
      return row;
    },
    /** The offerings of `ids` (any org) by id, in one query; ids of no offering are absent. */
    async offeringsById(ids: string[], tx: Executor = db): Promise<Map<string, OfferingRow>> {
      if (ids.length === 0) return new Map();
      const rows = await tx.select().from(offerings).where(inArray(offerings.id, ids));
      return new Map(rows.map((row) => [row.id, row]));
    },
    /**
     * Locks the offering's row until `tx` ends. `for no key update`, like an update of the row: it
     * serialises with every change of the offering and of its running totals, yet leaves the key
     * share that a foreign key check takes (a share issued, a subscription inserted) to pass, so an
     * approval holding its class's row never waits here behind a creation waiting for that class.
     */
    async lock(id: string, tx: Executor): Promise<OfferingRow | undefined> {
      const [row] = await tx.select().from(offerings).where(eq(offerings.id, id)).for('no key update');
      return row;
    },
    async update(id: string, changes: Partial<typeof offerings.$inferInsert>, tx: Executor = db): Promise<OfferingRow> {
      const [row] = await tx
        .update(offerings)
        .set({ ...changes, updatedAt: new Date() })
        .where(eq(offerings.id, id))
        .returning();
      return row!;
    },
    /** One page of offerings in `sort` order (ties by id), with the total counted up to `TOTAL_CAP` (see `pageWithTotal`). */
    async list(
      /** `orgId` undefined: every org (a platform admin's back office). */
      filter: { orgId: string | undefined; status?: OfferingStatus; exemptionType?: OfferingRow['exemptionType']; includeDrafts: boolean },
      sort: { by: OfferingSort; order: 'asc' | 'desc' },
      paging: { limit: number; offset: number },
      tx: Executor = db,
    ): Promise<Page<OfferingRow>> {
      const where = and(
        filter.orgId ? eq(offerings.orgId, filter.orgId) : undefined,
        filter.status ? eq(offerings.status, filter.status) : undefined,
        filter.exemptionType ? eq(offerings.exemptionType, filter.exemptionType) : undefined,
        filter.includeDrafts ? undefined : ne(offerings.status, 'draft'),
      );
      const column = sortColumns[sort.by];
      const rows = await tx
        .select()
        .from(offerings)
        .where(where)
        .orderBy(sort.order === 'asc' ? asc(column) : desc(column), asc(offerings.id))
        .limit(paging.limit + 1)
        .offset(paging.offset);
      return pageWithTotal(tx, rows, paging, { from: offerings, where });
    },
    async insertSecurity(row: typeof securityClasses.$inferInsert, tx: Executor = db): Promise<SecurityRow> {
      const [security] = await tx.insert(securityClasses).values(row).returning();
      return security!;
    },
    async findSecurity(orgId: string, id: string, tx: Executor = db): Promise<SecurityRow | undefined> {
      const [row] = await tx
        .select()
        .from(securityClasses)
        .where(and(eq(securityClasses.orgId, orgId), eq(securityClasses.id, id)));
      return row;
    },
    /** Locks the class's row until `tx` ends (`for no key update`, see `lock`). */
    async lockSecurity(id: string, tx: Executor): Promise<SecurityRow | undefined> {
      const [row] = await tx.select().from(securityClasses).where(eq(securityClasses.id, id)).for('no key update');
      return row;
    },
    /**
     * One page of the org's security classes, oldest first (ties by id), with the total counted up
     * to `TOTAL_CAP` (see `pageWithTotal`); `visibleOnly`: of offerings past draft.
     */
    async listSecurities(
      filter: { orgId: string; offeringId?: string; category?: SecurityRow['category']; visibleOnly: boolean },
      paging: { limit: number; offset: number },
      tx: Executor = db,
    ): Promise<Page<SecurityRow>> {
      const where: SQL | undefined = and(
        eq(securityClasses.orgId, filter.orgId),
        filter.offeringId ? eq(securityClasses.offeringId, filter.offeringId) : undefined,
        filter.category ? eq(securityClasses.category, filter.category) : undefined,
        filter.visibleOnly ? ne(offerings.status, 'draft') : undefined,
      );
      const rows = await tx
        .select({ security: securityClasses })
        .from(securityClasses)
        .innerJoin(offerings, eq(offerings.id, securityClasses.offeringId))
        .where(where)
        .orderBy(asc(securityClasses.createdAt), asc(securityClasses.id))
        .limit(paging.limit + 1)
        .offset(paging.offset);
      return pageWithTotal(
        tx,
        rows.map((row) => row.security),
        paging,
        { from: sql`${securityClasses} inner join ${offerings} on ${offerings.id} = ${securityClasses.offeringId}`, where },
      );
    },
    async insertDocument(row: Omit<typeof offeringDocuments.$inferInsert, 'version'>, tx: Executor): Promise<DocumentRow> {
      const [latest] = await tx
        .select({ version: max(offeringDocuments.version) })
        .from(offeringDocuments)
        .where(and(eq(offeringDocuments.offeringId, row.offeringId), eq(offeringDocuments.kind, row.kind)));
      const [document] = await tx
        .insert(offeringDocuments)
        .values({ ...row, version: (latest?.version ?? 0) + 1 })
        .returning();
      return document!;
    },
    /** One page of an offering's documents (by kind, newest version first), with the total counted up to `TOTAL_CAP` (see `pageWithTotal`). */
    async documents(offeringId: string, paging: { limit: number; offset: number }, tx: Executor = db): Promise<Page<DocumentRow>> {
      const where = eq(offeringDocuments.offeringId, offeringId);
      const rows = await tx
        .select()
        .from(offeringDocuments)
        .where(where)
        .orderBy(asc(offeringDocuments.kind), desc(offeringDocuments.version), asc(offeringDocuments.id))
        .limit(paging.limit + 1)
        .offset(paging.offset);
      return pageWithTotal(tx, rows, paging, { from: offeringDocuments, where });
    },
    async latestDocument(offeringId: string, kind: DocumentRow['kind'], tx: Executor = db): Promise<DocumentRow | undefined> {
      const [row] = await tx
        .select()
        .from(offeringDocuments)
        .where(and(eq(offeringDocuments.offeringId, offeringId), eq(offeringDocuments.kind, kind)))
        .orderBy(desc(offeringDocuments.version))
        .limit(1);
      return row;
    },
  };
}

export type OfferingsRepo = ReturnType<typeof offeringsRepo>;
