import { reviewerLabel, reviewerOrg, type Reviewer } from '../../platform/auth/principal.ts';
import type { AuditWriter } from '../../platform/audit/audit.service.ts';
import type { Db } from '../../platform/db/database.ts';
import { AppError, notFound } from '../../platform/http/errors.ts';
import type { CorrectionsRepo, ShareCancellationRow, ShareRow } from './corrections.repo.ts';

/** `units`: the re-issued entry's units (default the cancelled entry's); absent `reissue`, the entry is only cancelled. */
export type CorrectionInput = { reason: string; reissue?: { units?: number } };

/**
 * Ledger corrections as transactions, never edits: a cancellation of an active entry with its
 * reason and, optionally, a re-issued entry (same holder, class, subscription, price and dates;
 * corrected units) that names the one it replaces. Both are in the audit log and the OCF export.
 */
export function correctionsService(deps: { db: Db; repo: CorrectionsRepo; audit: AuditWriter }) {
  const { db, repo, audit } = deps;
  return {
    /**
     * Errors: NOT_FOUND (no such entry in the reviewer's org), INVALID_STATE (already cancelled),
     * OFFERING_FULL (the re-issued units exceed the class's authorized units).
     */
    async cancel(
      reviewer: Reviewer,
      shareId: string,
      input: CorrectionInput,
    ): Promise<{ cancellation: ShareCancellationRow; cancelled: ShareRow; reissued: ShareRow | null }> {
      const actor = reviewerLabel(reviewer);
      return db.transaction(async (tx) => {
        const share = await repo.lockShare(shareId, reviewerOrg(reviewer), tx);
        if (!share) throw notFound('share');
        if (share.status !== 'active')
          throw new AppError('INVALID_STATE', `Only an active entry can be cancelled; this one is ${share.status}`);
        const cancelled = await repo.markCancelled(share.id, tx);
        let reissued: ShareRow | null = null;
        if (input.reissue) {
          const units = input.reissue.units ?? share.units;
          const { authorized, issued } = await repo.lockClassUnits(share.securityClassId, tx);
          if (issued + units > authorized) throw new AppError('OFFERING_FULL', 'Re-issuing these units would exceed the units authorized');
          reissued = await repo.insertShare(
            {
              orgId: share.orgId,
              userId: share.userId,
              subscriptionId: share.subscriptionId,
              offeringId: share.offeringId,
              securityClassId: share.securityClassId,
              units,
              pricePerUnitCents: share.pricePerUnitCents,
              costBasisCents: units * share.pricePerUnitCents,
              currency: share.currency,
              acquisitionType: share.acquisitionType,
              acquisitionDate: share.acquisitionDate,
              holdingPeriodEndDate: share.holdingPeriodEndDate,
              restricted: share.restricted,
              restrictedUntil: share.restrictedUntil,
              replacesShareId: share.id,
            },
            tx,
          );
        }
        const cancellation = await repo.insertCancellation(
          { orgId: share.orgId, shareId: share.id, reason: input.reason, reissuedShareId: reissued?.id ?? null, cancelledBy: actor },
          tx,
        );
        const related = [
          { type: 'subscription', id: share.subscriptionId },
          { type: 'security_class', id: share.securityClassId },
          { type: 'user', id: share.userId },
        ];
        // The reason is staff's free text: only its digest (with the state) goes in the log.
        await audit.record(tx, {
          orgId: share.orgId,
          action: 'share.cancelled',
          subject: { type: 'share', id: share.id },
          related: [...related, { type: 'share_cancellation', id: cancellation.id }],
          before: share,
          after: { ...cancelled, reason: input.reason },
          details: { units: share.units, cancellation_id: cancellation.id, reissued_share_id: reissued?.id ?? null },
        });
        if (reissued) {
          await audit.record(tx, {
            orgId: reissued.orgId,
            action: 'share.reissued',
            subject: { type: 'share', id: reissued.id },
            related: [...related, { type: 'share', id: share.id }],
            after: { ...reissued, reason: input.reason },
            details: { units: reissued.units, replaces_share_id: share.id, cancellation_id: cancellation.id },
          });
        }
        return { cancellation, cancelled, reissued };
      });
    },
  };
}

export type CorrectionsService = ReturnType<typeof correctionsService>;
