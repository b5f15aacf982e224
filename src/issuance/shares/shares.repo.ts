import { and, desc, eq } from 'drizzle-orm';
import type { Executor } from '../../platform/db/database.ts';
import { pageWithTotal } from '../../platform/db/pages.ts';
import { offerings, securityClasses, shares } from '../issuance.tables.ts';

/** `orgId` undefined: every org (a platform admin's ledger); `userId` undefined: every holder. */
export type ShareFilter = {
  orgId: string | undefined;
  userId: string | undefined;
  securityClassId?: string;
  offeringId?: string;
  status?: (typeof shares.$inferSelect)['status'];
  restricted?: boolean;
};

/** Reads of the share ledger; entries are written only by subscription approval. */
export function sharesRepo(db: Executor) {
  const columns = {
    share: shares,
    security: { id: securityClasses.id, name: securityClasses.name, category: securityClasses.category },
    offering: { id: offerings.id, name: offerings.name },
  };
  const where = (filter: ShareFilter) =>
    and(
      filter.orgId ? eq(shares.orgId, filter.orgId) : undefined,
      filter.userId ? eq(shares.userId, filter.userId) : undefined,
      filter.securityClassId ? eq(shares.securityClassId, filter.securityClassId) : undefined,
      filter.offeringId ? eq(shares.offeringId, filter.offeringId) : undefined,
      filter.status ? eq(shares.status, filter.status) : undefined,
      filter.restricted !== undefined ? eq(shares.restricted, filter.restricted) : undefined,
    );
  return {
    /** One page of entries, newest first, with the total counted up to `TOTAL_CAP` (see `pageWithTotal`). */
    async list(filter: ShareFilter, paging: { limit: number; offset: number }) {
      const rows = await db
        .select(columns)
        .from(shares)
        .innerJoin(securityClasses, eq(securityClasses.id, shares.securityClassId))
        .innerJoin(offerings, eq(offerings.id, shares.offeringId))
        .where(where(filter))
        .orderBy(desc(shares.createdAt), desc(shares.id))
        .limit(paging.limit + 1)
        .offset(paging.offset);
      return pageWithTotal(db, rows, paging, { from: shares, where: where(filter) });
    },
    async find(filter: { orgId: string; userId: string; id: string }) {
      const [row] = await db
        .select(columns)
        .from(shares)
        .innerJoin(securityClasses, eq(securityClasses.id, shares.securityClassId))
        .innerJoin(offerings, eq(offerings.id, shares.offeringId))
        .where(and(where(filter), eq(shares.id, filter.id)));
      return row;
    },
  };
}

export type SharesRepo = ReturnType<typeof sharesRepo>;
export type ShareWithRefs = NonNullable<Awaited<ReturnType<SharesRepo['find']>>>;
