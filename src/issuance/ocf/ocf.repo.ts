import { asc, eq, inArray } from 'drizzle-orm';
import type { Executor } from '../../platform/db/database.ts';
import { issuers, offerings, securityClasses, shareCancellations, shares } from '../issuance.tables.ts';

/** Reads of one issuer's share ledger for the OCF export: its offerings, classes, entries and corrections. */
export function ocfRepo(db: Executor) {
  return {
    async issuer(id: string) {
      const [row] = await db.select().from(issuers).where(eq(issuers.id, id));
      return row;
    },
    async ledger(issuerId: string) {
      const offeringRows = await db
        .select()
        .from(offerings)
        .where(eq(offerings.issuerId, issuerId))
        .orderBy(asc(offerings.createdAt), asc(offerings.id));
      const offeringIds = offeringRows.map((row) => row.id);
      if (offeringIds.length === 0) return { offerings: offeringRows, classes: [], shares: [], cancellations: [] };
      const classes = await db
        .select()
        .from(securityClasses)
        .where(inArray(securityClasses.offeringId, offeringIds))
        .orderBy(asc(securityClasses.createdAt), asc(securityClasses.id));
      const shareRows = await db
        .select()
        .from(shares)
        .where(inArray(shares.offeringId, offeringIds))
        .orderBy(asc(shares.createdAt), asc(shares.id));
      const cancellations =
        shareRows.length === 0
          ? []
          : await db
              .select()
              .from(shareCancellations)
              .where(
                inArray(
                  shareCancellations.shareId,
                  shareRows.map((row) => row.id),
                ),
              )
              .orderBy(asc(shareCancellations.createdAt), asc(shareCancellations.id));
      return { offerings: offeringRows, classes, shares: shareRows, cancellations };
    },
  };
}

export type OcfRepo = ReturnType<typeof ocfRepo>;
