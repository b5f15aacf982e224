import { sql } from 'drizzle-orm';
import { AppError, notFound } from '../../platform/http/errors.ts';
import { assertNotOwnReview, reviewerLabel, reviewerOrg, type Reviewer, type UserPrincipal } from '../../platform/auth/principal.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import type { AuditWriter } from '../../platform/audit/audit.service.ts';
import type { Actor } from '../../platform/audit/context.ts';
import { publish } from '../../platform/events/outbox.ts';
import type { CursorPaging, OffsetPaging, PageCount } from '../../platform/http/paging.ts';
import type { PiiRecord } from '../pii/pii.schemas.ts';
import type { PiiService } from '../pii/pii.service.ts';
import type { UsersService } from '../users/users.service.ts';
import { OPEN_STATUSES, type KycRepo, type KycRow, type KycStatus } from './kyc.repo.ts';
import type { KycProvider, ProviderOutcome } from './provider.ts';
import { isUniqueViolation } from '../../platform/db/errors.ts';
import { lockScope } from '../../platform/db/locks.ts';

export type KycVerification = {
  verificationId: string;
  userId: string;
  orgId: string;
  status: KycStatus;
  checks: { identity: KycRow['identityCheck']; document: KycRow['documentCheck'] };
  requiredAction: { type: 'document_scan'; url: string } | null;
  submittedAt: Date;
  completedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
};

export type EffectiveKyc = Omit<KycVerification, 'verificationId' | 'status' | 'submittedAt' | 'createdAt' | 'updatedAt'> & {
  verificationId: string | null;
  status: KycStatus | 'not_started';
  submittedAt: Date | null;
  createdAt: Date | null;
  updatedAt: Date | null;
};

const TERMINAL: KycStatus[] = ['approved', 'rejected', 'expired', 'error'];
const EVENT_FOR_STATUS: Partial<Record<KycStatus, string>> = {
  action_required: 'kyc.verification.action_required',
  needs_review: 'kyc.verification.needs_review',
  approved: 'kyc.verification.approved',
  rejected: 'kyc.verification.rejected',
  expired: 'kyc.verification.expired',
  error: 'kyc.verification.error',
};

export function present(row: KycRow): KycVerification {
  return {
    verificationId: row.id,
    userId: row.userId,
    orgId: row.orgId,
    status: row.status,
    checks: { identity: row.identityCheck, document: row.documentCheck },
    requiredAction: row.requiredAction ?? null,
    submittedAt: row.submittedAt,
    completedAt: row.completedAt,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export function kycService(deps: {
  db: Db;
  audit: AuditWriter;
  repo: KycRepo;
  pii: Pick<PiiService, 'upsert'>;
  users: Pick<UsersService, 'visibleUser'>;
  provider: KycProvider;
  ttlHours: number;
  /** How long a request may take to submit a verification to the provider before it counts as interrupted. */
  submitLeaseSeconds: number;
}) {
  const { db, repo, provider } = deps;
  const providerActor: Actor = { kind: 'system', id: `kyc:${provider.name}` };
  /** Closing stale verifications is the platform's doing, whoever's request happened to run it. */
  const SWEEP_ACTOR: Actor = { kind: 'system', id: 'kyc:sweep' };

  const eventData = (row: KycRow) => ({ verification_id: row.id, user_id: row.userId, status: row.status });

  /** `actor`: default the request's caller (a reviewer); the provider's answers name the provider. */
  async function changeStatus(row: KycRow, changes: Partial<KycRow>, tx: Executor, actor?: Actor): Promise<KycRow> {
    const updated = await repo.update(row.id, changes, tx);
    if (updated.status !== row.status) {
      await deps.audit.record(tx, {
        orgId: updated.orgId,
        action: `kyc.verification.${updated.status}`,
        subject: { type: 'kyc_verification', id: updated.id },
        related: [{ type: 'user', id: updated.userId }],
        before: row,
        after: updated,
        details: {
          from_status: row.status,
          to_status: updated.status,
          identity_check: updated.identityCheck,
          document_check: updated.documentCheck,
        },
        ...(actor ? { actor } : {}),
      });
    }
    const event = updated.status !== row.status ? EVENT_FOR_STATUS[updated.status] : undefined;
    if (event) {
      await publish(tx, {
        orgId: updated.orgId,
        type: event,
        data: eventData(updated),
      });
    }
    return updated;
  }

  /**
   * Closes stale verifications (`repo.sweep`) and publishes each one's transition in the same
   * transaction (`tx`, or one of its own), so a webhook follows every status a reader can see.
   * Returns how many it closed.
   */
  async function sweep(filter: { userId?: string; orgId?: string; id?: string }, tx?: Executor): Promise<number> {
    const run = async (inTx: Executor) => {
      const closed = await repo.sweep(filter, inTx);
      for (const row of closed) {
        await deps.audit.record(inTx, {
          orgId: row.orgId,
          action: `kyc.verification.${row.status}`,
          subject: { type: 'kyc_verification', id: row.id },
          related: [{ type: 'user', id: row.userId }],
          after: row,
          details: { to_status: row.status, reason: row.status === 'expired' ? 'expired' : 'submission_interrupted' },
          actor: SWEEP_ACTOR,
        });
        await publish(inTx, { orgId: row.orgId, type: EVENT_FOR_STATUS[row.status]!, data: eventData(row) });
      }
      return closed.length;
    };
    return tx ? run(tx) : db.transaction(run);
  }

  /**
   * Applies a provider's answer to a still-open verification; answers for closed ones are ignored.
   * `reference` is stored with the answer of a first submission, in the same transaction.
   */
  async function applyOutcome(id: string, outcome: ProviderOutcome, reference?: string): Promise<KycRow> {
    return db.transaction(async (tx) => {
      const row = await repo.lock(id, tx);
      if (!row) throw notFound('KYC verification');
      if (TERMINAL.includes(row.status) || (row.status === 'needs_review' && outcome.status === 'needs_review')) return row;
      const terminal = TERMINAL.includes(outcome.status);
      return changeStatus(
        row,
        {
          ...(reference !== undefined ? { providerReference: reference, submitLeaseUntil: null } : {}),
          status: outcome.status,
          identityCheck: outcome.checks.identity,
          documentCheck: outcome.checks.document,
          requiredAction: outcome.requiredAction,
          completedAt: terminal ? new Date() : null,
        },
        tx,
        // The provider decided, even when its answer arrives during the investor's request.
        providerActor,
      );
    });
  }

  async function visibleVerification(principal: UserPrincipal, id: string): Promise<KycRow> {
    await sweep({ id });
    const row = await repo.find(id);
    if (!row || row.orgId !== principal.orgId || (row.userId !== principal.userId && principal.role !== 'org_admin')) {
      throw notFound('KYC verification');
    }
    return row;
  }

  /** Polls the provider for a verification still waiting on it. */
  async function refresh(row: KycRow): Promise<KycRow> {
    if (row.status !== 'pending' || !row.providerReference) return row;
    const outcome = await provider.fetchResult(row.providerReference);
    return outcome.status === 'pending' ? row : applyOutcome(row.id, outcome);
  }

  return {
    /**
     * Starts a verification. Every check (one open verification per user, the merged PII's
     * validity) runs before anything is written, and the PII, the verification and its event
     * commit together: a refused request changes nothing. A per-user advisory lock serialises
     * concurrent submissions. The provider is called after commit, under a lease
     * (`submitLeaseSeconds`): if this process dies before the answer is stored, the next sweep
     * fails the verification and the user may submit again.
     */
    async create(principal: UserPrincipal, pii: PiiRecord): Promise<KycVerification> {
      const user = await deps.users.visibleUser(principal, principal.userId);
      let created: { row: KycRow; record: PiiRecord };
      try {
        created = await db.transaction(async (tx) => {
          await lockScope(tx, 'kyc-submission', user.id);
          await sweep({ userId: user.id }, tx);
          if (await repo.openForUser(user.id, tx)) throw new AppError('CONFLICT', 'This user already has a KYC verification in progress');
          const record = await deps.pii.upsert(user, pii, tx);
          const inserted = await repo.insert(
            {
              orgId: user.orgId,
              userId: user.id,
              status: 'pending',
              identityCheck: 'pending',
              documentCheck: 'not_attempted',
              provider: provider.name,
              // The database's clock, as the Idempotency-Key lease marked in this same transaction: a retry
              // that takes over the key of a request that died finds this submission's lease over too.
              submitLeaseUntil: sql`now() + make_interval(secs => ${deps.submitLeaseSeconds})`,
              expiresAt: new Date(Date.now() + deps.ttlHours * 3600_000),
            },
            tx,
          );
          await deps.audit.record(tx, {
            orgId: inserted.orgId,
            action: 'kyc.verification.created',
            subject: { type: 'kyc_verification', id: inserted.id },
            related: [{ type: 'user', id: inserted.userId }],
            after: inserted,
            details: { status: inserted.status, provider: inserted.provider },
          });
          await publish(tx, {
            orgId: inserted.orgId,
            type: 'kyc.verification.created',
            data: { verification_id: inserted.id, user_id: inserted.userId, status: inserted.status },
          });
          return { row: inserted, record };
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw new AppError('CONFLICT', 'This user already has a KYC verification in progress');
        throw error;
      }
      const { row, record } = created;

      let submitted: Awaited<ReturnType<KycProvider['submit']>>;
      try {
        submitted = await provider.submit({ verificationId: row.id, pii: record });
      } catch {
        return present(
          await db.transaction(async (tx) => {
            const locked = (await repo.lock(row.id, tx))!;
            if (locked.status !== 'pending' || locked.providerReference) return locked;
            return changeStatus(
              locked,
              { status: 'error', identityCheck: 'not_attempted', submitLeaseUntil: null, completedAt: new Date() },
              tx,
              providerActor,
            );
          }),
        );
      }
      return present(await applyOutcome(row.id, submitted.outcome, submitted.reference));
    },

    async get(principal: UserPrincipal, id: string): Promise<KycVerification> {
      return present(await refresh(await visibleVerification(principal, id)));
    },

    /** The caller's verifications, newest first, one page of them, with the capped total (see `Page`). */
    async listOwn(principal: UserPrincipal, paging: OffsetPaging): Promise<{ items: KycVerification[] } & PageCount> {
      await sweep({ userId: principal.userId });
      const { rows, ...count } = await repo.listForOrg({ orgId: principal.orgId, userId: principal.userId }, paging);
      return { items: await Promise.all(rows.map(async (row) => present(await refresh(row)))), ...count };
    },

    /** An approved check stays effective; otherwise the newest check speaks. */
    async effective(orgId: string, userId: string): Promise<EffectiveKyc> {
      await sweep({ userId });
      const rows = (await repo.listForUser(userId)).filter((row) => row.orgId === orgId);
      const chosen = rows.find((row) => row.status === 'approved') ?? rows[0];
      if (!chosen) {
        return {
          verificationId: null,
          userId,
          orgId,
          status: 'not_started',
          checks: { identity: 'not_attempted', document: 'not_attempted' },
          requiredAction: null,
          submittedAt: null,
          completedAt: null,
          createdAt: null,
          updatedAt: null,
        };
      }
      return present(await refresh(chosen));
    },

    async listForOrg(principal: UserPrincipal, filter: { status?: KycStatus }, paging: OffsetPaging) {
      if (principal.role !== 'org_admin') throw new AppError('FORBIDDEN', 'Only an org_admin can list verifications');
      await sweep({ orgId: principal.orgId });
      const { rows, ...count } = await repo.listForOrg({ orgId: principal.orgId, ...filter }, paging);
      return { items: rows.map(present), ...count };
    },

    /**
     * Closes stale verifications of every org (expired checks, interrupted submissions) and
     * publishes their transitions; run periodically by the worker (`startMaintenance`), so webhooks
     * follow even when nobody reads. Returns how many it closed.
     */
    sweepStale: () => sweep({}),

    async handleProviderCallback(headers: Record<string, string | string[] | undefined>, rawBody: Buffer): Promise<void> {
      let callback;
      try {
        callback = provider.parseCallback(headers, rawBody);
      } catch {
        throw new AppError('UNAUTHORIZED', 'Callback signature is invalid');
      }
      const row = await repo.findByReference(provider.name, callback.reference);
      if (!row) throw notFound('KYC verification');
      await applyOutcome(row.id, callback.outcome);
    },

    async listForReview(reviewer: Reviewer, filter: { status?: KycStatus }, paging: CursorPaging) {
      const { rows, ...count } = await repo.listForOrg(
        { orgId: reviewerOrg(reviewer), status: filter.status ?? 'needs_review' },
        { limit: paging.limit, offset: paging.offset, after: paging.cursor },
      );
      return { items: rows.map(present), ...count };
    },

    async review(reviewer: Reviewer, id: string, decision: 'approved' | 'rejected', reason: string | undefined): Promise<KycVerification> {
      return present(
        await db.transaction(async (tx) => {
          const row = await repo.lock(id, tx);
          const scope = reviewerOrg(reviewer);
          if (!row || (scope !== undefined && row.orgId !== scope)) throw notFound('KYC verification');
          assertNotOwnReview(reviewer, row.userId, 'KYC verification');
          if (row.status !== 'needs_review')
            throw new AppError('INVALID_STATE', `Only a verification in needs_review can be reviewed; this one is ${row.status}`);
          return changeStatus(
            row,
            {
              status: decision,
              identityCheck: decision === 'approved' ? 'passed' : 'failed',
              requiredAction: null,
              completedAt: new Date(),
              reviewedBy: reviewerLabel(reviewer),
              reviewReason: reason ?? null,
            },
            tx,
          );
        }),
      );
    },

    isOpen: (status: KycStatus) => OPEN_STATUSES.includes(status),
  };
}

export type KycService = ReturnType<typeof kycService>;
