import { z } from 'zod';
import { assertNotOwnReview, reviewerLabel, reviewerOrg, type Reviewer, type UserPrincipal } from '../../platform/auth/principal.ts';
import type { Clock } from '../../platform/clock.ts';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import { lockScope } from '../../platform/db/locks.ts';
import type { AuditWriter } from '../../platform/audit/audit.service.ts';
import { publish } from '../../platform/events/outbox.ts';
import { AppError, notFound } from '../../platform/http/errors.ts';
import { pageOffset, type PageCursorPaging, type PagePaging } from '../../platform/http/paging.ts';
import { fromCents } from '../../platform/money.ts';
import type { OfferingRow, OfferingsRepo, SecurityRow } from '../offerings/offerings.repo.ts';
import type { TotalsRepo } from '../offerings/totals.repo.ts';
import { checkoutReturnUrls, type CheckoutReturnPolicy, type CheckoutReturnUrls } from '../payments/checkout-return.ts';
import type { PaymentEvent, PaymentProvider } from '../payments/payment-provider.ts';
import { regCfLimitCents, restrictionFor } from './regulation.ts';
import { openSignature, sealSignature, type SignatureEvidence } from './signature-evidence.ts';
import type { SubscriptionRow, SubscriptionsRepo, SubscriptionStatus } from './subscriptions.repo.ts';

/** What issuance needs to know about an investor, asked of identity at every step. */
export type InvestorEligibility = {
  kycStatus: string;
  accreditation: { status: string; verified: boolean; reviewStatus: string; expiresAt: Date | null };
};

export type CreateSubscriptionInput = {
  securityClassId: string;
  unitsSubscribed: number;
  trancheId?: string;
  paymentMethod: 'card' | 'us_bank_account';
  accreditationStatus: 'accredited' | 'non_accredited';
  suitabilityConfirmed: boolean;
  riskAcknowledgmentSigned: boolean;
  annualIncomeCents?: number;
  netWorthCents?: number;
  otherRegCfInvestmentsCents?: number;
};

export type SignatureInput = { signerName: string; consent: true };
export type RequestContext = { ip: string; userAgent: string | undefined };

export const CONSENT_TEXT =
  'I agree to sign the subscription agreement electronically, I have read it, and I intend my typed name to be my signature.';
/** The payment provider's webhooks act as the system. */
const PAYMENTS_ACTOR = 'payments:stripe';
const CANCELLABLE: SubscriptionStatus[] = ['draft', 'pending_signature', 'pending_payment'];

export function present(row: SubscriptionRow) {
  return {
    id: row.id,
    offeringId: row.offeringId,
    securityClassId: row.securityClassId,
    userId: row.userId,
    unitsSubscribed: row.units,
    pricePerUnit: fromCents(row.pricePerUnitCents),
    amount: fromCents(row.amountCents),
    currency: row.currency,
    trancheId: row.trancheId,
    paymentMethod: row.paymentMethod,
    accreditationStatus: row.accreditationStatus,
    suitabilityConfirmed: row.suitabilityConfirmed,
    riskAcknowledgmentSigned: row.riskAcknowledgmentSigned,
    status: row.status,
    paymentStatus: row.paymentStatus,
    signedAt: (row.signature as { signedAt?: string } | null)?.signedAt ?? null,
    fundedAt: row.fundedAt,
    approvedAt: row.approvedAt,
    completedAt: row.completedAt,
    cancelledAt: row.cancelledAt,
    cancelReason: row.cancelReason,
    reviewReason: row.reviewReason,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export function subscriptionsService(deps: {
  db: Db;
  keyring: Keyring;
  repo: SubscriptionsRepo;
  offerings: OfferingsRepo;
  /** The running totals every change of a subscription's status moves, in its transaction. */
  totals: TotalsRepo;
  eligibility: (orgId: string, userId: string) => Promise<InvestorEligibility>;
  /** Identity's allowed redirect origins of an org (`https://app.example.com`), for checkout return URLs. */
  redirectOrigins: (orgId: string) => Promise<string[]>;
  payments: PaymentProvider;
  clock: Clock;
  publicUrl: string;
  checkoutReturn: CheckoutReturnPolicy;
  audit: AuditWriter;
}) {
  const { db, repo, clock } = deps;

  async function change(
    row: SubscriptionRow,
    to: SubscriptionStatus,
    actor: string,
    changes: Partial<SubscriptionRow>,
    tx: Executor,
    reason?: string | null,
  ) {
    const updated = await repo.update(row.id, { ...changes, status: to }, tx);
    await deps.totals.move(row, updated, tx);
    await repo.logTransition({ subscriptionId: row.id, fromStatus: row.status, toStatus: to, actor, reason: reason ?? null }, tx);
    await deps.audit.record(tx, {
      orgId: updated.orgId,
      action: `subscription.${to}`,
      subject: { type: 'subscription', id: updated.id },
      related: [
        { type: 'offering', id: updated.offeringId },
        { type: 'user', id: updated.userId },
      ],
      before: row,
      after: updated,
      details: { from_status: row.status, to_status: to, payment_status: updated.paymentStatus },
      ...(actor === PAYMENTS_ACTOR ? { actor: { kind: 'system', id: PAYMENTS_ACTOR } } : {}),
    });
    return updated;
  }

  const eventData = (row: SubscriptionRow) => ({
    subscription_id: row.id,
    offering_id: row.offeringId,
    user_id: row.userId,
    status: row.status,
    amount: fromCents(row.amountCents),
    currency: row.currency,
  });

  /** KYC approved, and for 506(c) verified, unexpired accreditation: checked live at create, sign and approve. */
  async function assertEligible(orgId: string, userId: string, offering: OfferingRow): Promise<InvestorEligibility> {
    const eligibility = await deps.eligibility(orgId, userId);
    if (eligibility.kycStatus !== 'approved') throw new AppError('KYC_REQUIRED', 'KYC must be approved before subscribing');
    if (offering.exemptionType === 'reg_d_506c' && !eligibility.accreditation.verified) {
      const expired = eligibility.accreditation.reviewStatus === 'expired' || eligibility.accreditation.status === 'expired';
      throw new AppError(
        'ACCREDITATION_REQUIRED',
        expired
          ? 'The accreditation has expired; Rule 506(c) needs a current verification'
          : 'Rule 506(c) offerings need a verified accreditation',
      );
    }
    return eligibility;
  }

  function assertOpen(offering: OfferingRow) {
    if (offering.status !== 'open') throw new AppError('INVALID_STATE', `The offering is ${offering.status}, not open`);
    if (offering.deadline < clock.now().toISOString().slice(0, 10)) throw new AppError('INVALID_STATE', 'The offering deadline has passed');
  }

  async function own(principal: UserPrincipal, id: string): Promise<SubscriptionRow> {
    const row = await repo.find(principal.orgId, id);
    if (!row || row.userId !== principal.userId) throw notFound('subscription');
    return row;
  }

  async function refundIfPaid(row: SubscriptionRow) {
    if (row.paymentIntentId && (row.paymentStatus === 'paid' || row.paymentStatus === 'processing')) {
      await deps.payments.refund(row.paymentIntentId, `refund:${row.id}`);
      await db.transaction(async (tx) => {
        await repo.update(row.id, { paymentStatus: 'refunded' }, tx);
        await deps.audit.record(tx, {
          orgId: row.orgId,
          action: 'subscription.refunded',
          subject: { type: 'subscription', id: row.id },
          details: { payment_intent_id: row.paymentIntentId, amount_cents: row.amountCents },
        });
      });
    }
  }

  return {
    /**
     * Subscribes the investor to `unitsSubscribed` units of a class of an open offering, at the
     * class's price (amount in cents = units x price), in status pending_signature: the units are
     * held and the offering's running totals moved in the same transaction. Throws NOT_FOUND (no
     * such offering for the org, or a draft), VALIDATION_ERROR (a class of another offering,
     * suitability or risk not confirmed, under the minimum investment, Reg CF income or net worth
     * missing), INVALID_STATE (not open, or past its deadline), KYC_REQUIRED, ACCREDITATION_REQUIRED
     * (506(c)), OFFERING_FULL (too few units left in the class, or past the offering's maximum
     * amount) and INVESTMENT_LIMIT_EXCEEDED (the per-investor maximum or the Reg CF 12-month limit).
     */
    async create(principal: UserPrincipal, offeringId: string, input: CreateSubscriptionInput) {
      const offering = await deps.offerings.find(principal.orgId, offeringId);
      if (!offering || offering.status === 'draft') throw notFound('offering');
      assertOpen(offering);
      const notAClass = () =>
        new AppError('VALIDATION_ERROR', 'securityClassId is not a class of this offering', [
          { field: 'securityClassId', message: 'is not a class of this offering' },
        ]);
      const security = await deps.offerings.findSecurity(principal.orgId, input.securityClassId);
      if (!security || security.offeringId !== offering.id) throw notAClass();
      if (!input.suitabilityConfirmed || !input.riskAcknowledgmentSigned) {
        const field = input.suitabilityConfirmed ? 'riskAcknowledgmentSigned' : 'suitabilityConfirmed';
        throw new AppError('VALIDATION_ERROR', `${field} must be true`, [{ field, message: 'must be true' }]);
      }
      // Checked first on the class as read now, to refuse early without a transaction; checked
      // again below on the class's locked row, whose values every later step uses.
      const assertMinimum = (amountCents: number, minimumCents: number) => {
        if (amountCents < minimumCents) {
          throw new AppError('VALIDATION_ERROR', `The minimum investment is ${fromCents(minimumCents)} ${offering.currency}`, [
            { field: 'unitsSubscribed', message: `is below the minimum investment of ${fromCents(minimumCents)}` },
          ]);
        }
      };
      assertMinimum(input.unitsSubscribed * security.pricePerUnitCents, offering.minimumInvestmentCents);
      const eligibility = await assertEligible(principal.orgId, principal.userId, offering);
      let regCfLimit: number | undefined;
      // 17 CFR 227.100(a)(2): the 12-month limit does not bind accredited investors, and an
      // investor counts as one here only once a reviewer verified it (a self-certification still
      // pending, denied or expired lifts nothing).
      if (offering.exemptionType === 'reg_cf' && !eligibility.accreditation.verified) {
        if (input.annualIncomeCents === undefined || input.netWorthCents === undefined) {
          const field = input.annualIncomeCents === undefined ? 'annualIncome' : 'netWorth';
          throw new AppError('VALIDATION_ERROR', `${field} is required for a non-accredited Reg CF investment`, [
            { field, message: 'is required for a non-accredited Reg CF investment' },
          ]);
        }
        regCfLimit = regCfLimitCents(input.annualIncomeCents, input.netWorthCents);
      }

      // The investor's limits span offerings, so one lock per investor serialises their subscriptions
      // (taken first, then the offering's row, then the class's, always in the order of
      // totals.repo.ts); the Reg CF total is summed under it, the offering's and class's are running totals.
      const row = await db.transaction(async (tx) => {
        await lockScope(tx, 'investor', principal.orgId, principal.userId);
        const regCfPrior =
          regCfLimit === undefined
            ? 0
            : (await repo.committedCents(
                { orgId: principal.orgId, userId: principal.userId, regCfSince: new Date(clock.now().getTime() - 365 * 86_400_000) },
                tx,
              )) + (input.otherRegCfInvestmentsCents ?? 0);
        const current = (await deps.offerings.lock(offering.id, tx))!;
        assertOpen(current);
        // The class as it is under its lock (held to the commit): its price and units authorized
        // may have changed since it was read above, and a change waits for this transaction now.
        const locked = await deps.offerings.lockSecurity(security.id, tx);
        if (!locked || locked.offeringId !== current.id) throw notAClass();
        const amountCents = input.unitsSubscribed * locked.pricePerUnitCents;
        assertMinimum(amountCents, current.minimumInvestmentCents);
        if (regCfLimit !== undefined && regCfPrior + amountCents > regCfLimit) {
          throw new AppError(
            'INVESTMENT_LIMIT_EXCEEDED',
            `Reg CF allows ${fromCents(regCfLimit)} USD in 12 months for this income and net worth; ${fromCents(Math.max(0, regCfLimit - regCfPrior))} remains`,
          );
        }
        // The class's units and the offering's totals are running totals (see totals.repo.ts), moved
        // here before the insert: a refusal throws, and the rollback takes the move back.
        const units = await deps.totals.holdUnits(locked.id, input.unitsSubscribed, tx);
        if (!units.taken) {
          throw new AppError(
            'OFFERING_FULL',
            `Only ${Math.max(0, locked.unitsAuthorized - units.heldBefore)} units of ${locked.name} remain`,
          );
        }
        // Alone past the maximum (however many cents: a sum would overflow the database's bigint).
        if (amountCents > current.maximumAmountCents) throw new AppError('OFFERING_FULL', 'The offering has reached its maximum amount');
        const counted = {
          offeringId: current.id,
          securityClassId: locked.id,
          userId: principal.userId,
          status: 'pending_signature' as const,
          units: input.unitsSubscribed,
          amountCents,
          accreditationStatus: input.accreditationStatus,
        };
        const totals = await deps.totals.add(counted, tx);
        if (totals.committedCents > current.maximumAmountCents)
          throw new AppError('OFFERING_FULL', 'The offering has reached its maximum amount');
        if (current.maximumInvestmentCents !== null && totals.investorCommittedCents > current.maximumInvestmentCents) {
          throw new AppError(
            'INVESTMENT_LIMIT_EXCEEDED',
            `The maximum investment per investor is ${fromCents(current.maximumInvestmentCents)} ${current.currency}`,
          );
        }
        const inserted = await repo.insert(
          {
            ...counted,
            orgId: principal.orgId,
            pricePerUnitCents: locked.pricePerUnitCents,
            currency: current.currency,
            trancheId: input.trancheId ?? null,
            paymentMethod: input.paymentMethod,
            suitabilityConfirmed: input.suitabilityConfirmed,
            riskAcknowledgmentSigned: input.riskAcknowledgmentSigned,
          },
          tx,
        );
        await repo.logTransition(
          { subscriptionId: inserted.id, fromStatus: null, toStatus: inserted.status, actor: `user:${principal.userId}` },
          tx,
        );
        await deps.audit.record(tx, {
          orgId: inserted.orgId,
          action: 'subscription.created',
          subject: { type: 'subscription', id: inserted.id },
          related: [
            { type: 'offering', id: inserted.offeringId },
            { type: 'user', id: inserted.userId },
          ],
          after: inserted,
          details: { status: inserted.status, units: inserted.units, amount_cents: inserted.amountCents, currency: inserted.currency },
        });
        await publish(tx, { orgId: inserted.orgId, type: 'subscription.created', data: eventData(inserted) });
        return inserted;
      });
      return present(row);
    },

    get: async (principal: UserPrincipal, id: string) => present(await own(principal, id)),

    /**
     * The whole evidence of a subscription's signature (signer, time, IP, user agent, agreement
     * version and hash, consent text), its sealed PII opened; null while unsigned. For audits:
     * the API shows only `signedAt`.
     */
    async signatureEvidence(orgId: string, id: string): Promise<SignatureEvidence | null> {
      const row = await repo.find(orgId, id);
      if (!row) throw notFound('subscription');
      return openSignature(deps.keyring, row);
    },

    /** One page of the caller's subscriptions, newest first, with the capped total (see `Page`). */
    async list(principal: UserPrincipal, filter: { status?: SubscriptionStatus; offeringId?: string }, paging: PagePaging) {
      const { rows, ...count } = await repo.list(
        { orgId: principal.orgId, userId: principal.userId, ...filter },
        { limit: paging.limit, offset: pageOffset(paging) },
      );
      return { items: rows.map(present), ...count };
    },

    /** Click-to-sign with evidence: signer, time, IP, user agent, the agreement's version and hash, the consent text. */
    async sign(principal: UserPrincipal, id: string, input: SignatureInput, context: RequestContext) {
      const current = await own(principal, id);
      const offering = (await deps.offerings.find(principal.orgId, current.offeringId))!;
      await assertEligible(principal.orgId, principal.userId, offering);
      const agreement = await deps.offerings.latestDocument(offering.id, 'subscription_agreement');
      if (!agreement) throw new AppError('INVALID_STATE', 'The offering has no subscription agreement to sign yet');
      const signed = await db.transaction(async (tx) => {
        const row = (await repo.lock(current.id, tx))!;
        if (row.status !== 'pending_signature')
          throw new AppError('INVALID_STATE', `Only a subscription pending signature can be signed; this one is ${row.status}`);
        const evidence: SignatureEvidence = {
          signerUserId: principal.userId,
          signerEmail: principal.email,
          signerName: input.signerName,
          signedAt: clock.now().toISOString(),
          ip: context.ip,
          userAgent: context.userAgent ?? null,
          agreementDocumentId: agreement.id,
          agreementVersion: agreement.version,
          agreementSha256: agreement.sha256,
          consentText: CONSENT_TEXT,
          method: 'typed_name',
        };
        // The signer's email, name, IP and user agent are sealed; the rest stays readable.
        const next = await change(row, 'pending_payment', `user:${principal.userId}`, sealSignature(deps.keyring, row.id, evidence), tx);
        await publish(tx, { orgId: next.orgId, type: 'subscription.agreement_signed', data: eventData(next) });
        return next;
      });
      return present(signed);
    },

    /**
     * A Stripe Checkout Session for units × price; an open session with the same return URLs is
     * returned again rather than duplicated, one with other return URLs is replaced: the new
     * session becomes the subscription's current one, then the old one is expired (its
     * `checkout.session.expired` no longer cancels anything; were it paid meanwhile, the payment
     * still funds the subscription, or is refunded if another already did, see
     * `handlePaymentEvent`). `successUrl` / `cancelUrl`: where the browser goes after paying or
     * cancelling (absolute URLs on the org's allowed redirect origins, see `checkoutReturnUrls`);
     * absent, our hosted confirmation pages. Throws VALIDATION_ERROR for a refused URL,
     * INVALID_STATE when the subscription is not signed or a payment is already under way (also
     * when that changed while the session was being created), CONFLICT while another checkout
     * request for the same subscription is being handled.
     */
    async createCheckout(principal: UserPrincipal, id: string, returnTo: Partial<CheckoutReturnUrls> = {}) {
      const urls = checkoutReturnUrls(returnTo, deps.checkoutReturn, deps.publicUrl, await deps.redirectOrigins(principal.orgId));
      const row = await own(principal, id);
      const assertPayable = (current: SubscriptionRow) => {
        if (current.status !== 'pending_payment')
          throw new AppError('INVALID_STATE', `Checkout needs a signed subscription; this one is ${current.status}`);
        if (current.paymentStatus === 'processing' || current.paymentStatus === 'paid')
          throw new AppError('INVALID_STATE', 'A payment is already under way');
      };
      assertPayable(row);
      const open = row.checkoutSessionId && row.checkoutUrl && row.paymentStatus !== 'failed' ? row.checkoutSessionId : null;
      if (open) {
        // Rows from before the URLs were kept count as created with the default pages.
        const defaults = checkoutReturnUrls({}, deps.checkoutReturn, deps.publicUrl);
        const sameReturn =
          (row.checkoutSuccessUrl ?? defaults.successUrl) === urls.successUrl &&
          (row.checkoutCancelUrl ?? defaults.cancelUrl) === urls.cancelUrl;
        if (sameReturn)
          return { sessionId: open, checkoutUrl: row.checkoutUrl!, amount: fromCents(row.amountCents), currency: row.currency };
      }
      const attempt = row.checkoutAttempts + 1;
      const session = await deps.payments
        .createCheckoutSession({
          subscriptionId: row.id,
          amountCents: row.amountCents,
          currency: row.currency,
          paymentMethod: row.paymentMethod,
          description: `Subscription ${row.id}: ${row.units} units`,
          ...urls,
          idempotencyKey: `checkout:${row.id}:${attempt}`,
        })
        .catch((error: unknown) => {
          // The same attempt asked for concurrently with other return URLs.
          if ((error as { type?: string }).type === 'StripeIdempotencyError')
            throw new AppError('CONFLICT', 'Another checkout request for this subscription is being handled; retry shortly');
          throw error;
        });
      try {
        await db.transaction(async (tx) => {
          const locked = (await repo.lock(row.id, tx))!;
          // Checked again under the lock: a payment, a cancellation or another checkout may have landed meanwhile.
          assertPayable(locked);
          if (locked.checkoutAttempts !== row.checkoutAttempts)
            throw new AppError('CONFLICT', 'Another checkout request for this subscription was handled meanwhile; retry');
          await repo.update(
            locked.id,
            {
              checkoutSessionId: session.id,
              checkoutUrl: session.url,
              checkoutSuccessUrl: urls.successUrl,
              checkoutCancelUrl: urls.cancelUrl,
              checkoutAttempts: attempt,
              paymentStatus: 'none',
            },
            tx,
          );
          await deps.audit.record(tx, {
            orgId: locked.orgId,
            action: 'subscription.payment_initiated',
            subject: { type: 'subscription', id: locked.id },
            details: { checkout_session_id: session.id, attempt },
          });
          await publish(tx, {
            orgId: locked.orgId,
            type: 'subscription.payment_initiated',
            data: { ...eventData(locked), checkout_session_id: session.id },
          });
        });
      } catch (error) {
        await deps.payments.expireCheckoutSession(session.id).catch(() => undefined);
        throw error;
      }
      // Best effort: a session paid or expired meanwhile cannot be expired, and needs not be.
      if (open) await deps.payments.expireCheckoutSession(open).catch(() => undefined);
      return { sessionId: session.id, checkoutUrl: session.url, amount: fromCents(row.amountCents), currency: row.currency };
    },

    async cancel(principal: UserPrincipal, id: string) {
      const current = await own(principal, id);
      const cancelled = await db.transaction(async (tx) => {
        const row = (await repo.lock(current.id, tx))!;
        if (!CANCELLABLE.includes(row.status))
          throw new AppError('INVALID_STATE', `A subscription that is ${row.status} cannot be cancelled`);
        const next = await change(
          row,
          'cancelled',
          `user:${principal.userId}`,
          { cancelledAt: clock.now(), cancelReason: 'cancelled by the investor' },
          tx,
          'cancelled by the investor',
        );
        await publish(tx, { orgId: next.orgId, type: 'subscription.cancelled', data: eventData(next) });
        return next;
      });
      if (cancelled.checkoutSessionId && cancelled.paymentStatus === 'none')
        await deps.payments.expireCheckoutSession(cancelled.checkoutSessionId).catch(() => undefined);
      await refundIfPaid(cancelled);
      return present((await repo.find(undefined, cancelled.id))!);
    },

    /**
     * One page of the review queue (the reviewer's org, or every org for a platform admin) in
     * `status`, newest first, with the capped total (see `Page`): by `paging.page`, or after
     * `paging.cursor` (the last id of the previous page; `page` is then ignored).
     */
    async listForReview(reviewer: Reviewer, status: SubscriptionStatus, paging: PageCursorPaging) {
      const { rows, ...count } = await repo.list(
        { orgId: reviewerOrg(reviewer), status },
        { limit: paging.limit, offset: paging.cursor ? 0 : pageOffset(paging), after: paging.cursor },
      );
      return { items: rows.map(present), ...count };
    },

    /** Approval issues the shares and completes the subscription, in one transaction. */
    async approve(reviewer: Reviewer, id: string) {
      const current = await repo.find(reviewerOrg(reviewer), id);
      if (!current) throw notFound('subscription');
      assertNotOwnReview(reviewer, current.userId, 'subscription');
      const offering = (await deps.offerings.find(undefined, current.offeringId))!;
      await assertEligible(current.orgId, current.userId, offering);
      const actor = reviewerLabel(reviewer);
      const completed = await db.transaction(async (tx) => {
        const row = (await repo.lock(current.id, tx))!;
        if (row.status !== 'pending_review')
          throw new AppError('INVALID_STATE', `Only a funded subscription in pending_review can be approved; this one is ${row.status}`);
        const now = clock.now();
        const approved = await change(row, 'approved', actor, { approvedAt: now, reviewedBy: actor }, tx);
        await publish(tx, { orgId: approved.orgId, type: 'subscription.approved', data: eventData(approved) });
        const security = (await deps.offerings.lockSecurity(row.securityClassId, tx))! satisfies SecurityRow;
        const issued = await repo.issuedUnits(security.id, tx);
        if (issued + row.units > security.unitsAuthorized)
          throw new AppError('OFFERING_FULL', 'Issuing these shares would exceed the units authorized');
        const acquisitionDate = now.toISOString().slice(0, 10);
        const restriction = restrictionFor(offering.exemptionType, acquisitionDate);
        const share = await repo.insertShare(
          {
            orgId: row.orgId,
            userId: row.userId,
            subscriptionId: row.id,
            offeringId: row.offeringId,
            securityClassId: row.securityClassId,
            units: row.units,
            pricePerUnitCents: row.pricePerUnitCents,
            costBasisCents: row.amountCents,
            currency: row.currency,
            acquisitionType: 'primary',
            acquisitionDate,
            holdingPeriodEndDate: restriction.until,
            restricted: restriction.restricted,
            restrictedUntil: restriction.until,
          },
          tx,
        );
        await deps.audit.record(tx, {
          orgId: share.orgId,
          action: 'share.issued',
          subject: { type: 'share', id: share.id },
          related: [
            { type: 'subscription', id: row.id },
            { type: 'security_class', id: share.securityClassId },
            { type: 'user', id: share.userId },
          ],
          after: share,
          details: {
            units: share.units,
            cost_basis_cents: share.costBasisCents,
            restricted: share.restricted,
            restricted_until: share.restrictedUntil,
          },
        });
        await publish(tx, {
          orgId: share.orgId,
          type: 'share.issued',
          data: { share_id: share.id, subscription_id: row.id, security_class_id: share.securityClassId, units: share.units },
        });
        const done = await change(approved, 'completed', actor, { completedAt: now }, tx);
        await publish(tx, { orgId: done.orgId, type: 'subscription.completed', data: eventData(done) });
        return done;
      });
      return present(completed);
    },

    async reject(reviewer: Reviewer, id: string, reason: string) {
      const current = await repo.find(reviewerOrg(reviewer), id);
      if (!current) throw notFound('subscription');
      assertNotOwnReview(reviewer, current.userId, 'subscription');
      const actor = reviewerLabel(reviewer);
      const rejected = await db.transaction(async (tx) => {
        const row = (await repo.lock(current.id, tx))!;
        if (row.status !== 'pending_review')
          throw new AppError('INVALID_STATE', `Only a subscription in pending_review can be rejected; this one is ${row.status}`);
        const next = await change(row, 'rejected', actor, { reviewedBy: actor, reviewReason: reason }, tx, reason);
        await publish(tx, { orgId: next.orgId, type: 'subscription.rejected', data: eventData(next) });
        return next;
      });
      await refundIfPaid(rejected);
      return present((await repo.find(undefined, rejected.id))!);
    },

    /**
     * Applies a verified payment event exactly once: its id is recorded in the same transaction as
     * the change, so a redelivery (even a concurrent one) finds it and does nothing.
     */
    async handlePaymentEvent(event: PaymentEvent): Promise<'processed' | 'duplicate' | 'ignored'> {
      let refundAfter: SubscriptionRow | undefined;
      const outcome = await db.transaction(async (tx) => {
        if (!(await repo.recordPaymentEvent({ id: event.id, type: event.type, subscriptionId: event.subscriptionId }, tx)))
          return 'duplicate' as const;
        // A replaced session is no longer the current one, but its payment is still this subscription's.
        const row =
          (await repo.lockBySession(event.sessionId, tx)) ??
          (event.subscriptionId && z.uuid().safeParse(event.subscriptionId).success
            ? await repo.lock(event.subscriptionId, tx)
            : undefined);
        if (!row) return 'ignored' as const;
        const current = row.checkoutSessionId === event.sessionId;
        const actor = PAYMENTS_ACTOR;
        const now = clock.now();
        const succeeded =
          (event.type === 'checkout.session.completed' && event.paymentStatus === 'paid') ||
          event.type === 'checkout.session.async_payment_succeeded';
        if (succeeded) {
          if (event.amountTotal !== null && event.amountTotal !== row.amountCents) return 'ignored' as const;
          if (row.status !== 'pending_payment') {
            refundAfter = { ...row, paymentIntentId: event.paymentIntentId ?? row.paymentIntentId, paymentStatus: 'paid' };
            return 'processed' as const;
          }
          const funded = await change(
            row,
            'pending_review',
            actor,
            { paymentStatus: 'paid', paymentIntentId: event.paymentIntentId, fundedAt: now },
            tx,
          );
          await publish(tx, { orgId: funded.orgId, type: 'subscription.funded', data: eventData(funded) });
        } else if (event.type === 'checkout.session.completed') {
          if (row.status === 'pending_payment') {
            await repo.update(row.id, { paymentStatus: 'processing', paymentIntentId: event.paymentIntentId }, tx);
            await deps.audit.record(tx, {
              orgId: row.orgId,
              action: 'subscription.payment_processing',
              subject: { type: 'subscription', id: row.id },
              details: { checkout_session_id: event.sessionId, payment_intent_id: event.paymentIntentId ?? null },
              actor: { kind: 'system', id: PAYMENTS_ACTOR },
            });
          }
        } else if (event.type === 'checkout.session.async_payment_failed') {
          if (row.status === 'pending_payment' && current) {
            const failed = await repo.update(row.id, { paymentStatus: 'failed' }, tx);
            await deps.audit.record(tx, {
              orgId: failed.orgId,
              action: 'subscription.payment_failed',
              subject: { type: 'subscription', id: failed.id },
              before: row,
              after: failed,
              details: { payment_status: failed.paymentStatus },
              actor: { kind: 'system', id: PAYMENTS_ACTOR },
            });
            await publish(tx, { orgId: failed.orgId, type: 'subscription.payment_failed', data: eventData(failed) });
          }
        } else if (event.type === 'checkout.session.expired') {
          // Only the current session's expiry ends the subscription; a replaced one's says nothing.
          if (row.status === 'pending_payment' && row.paymentStatus === 'none' && current) {
            const expired = await change(
              row,
              'cancelled',
              actor,
              { cancelledAt: now, cancelReason: 'checkout_expired' },
              tx,
              'checkout session expired',
            );
            await publish(tx, { orgId: expired.orgId, type: 'subscription.cancelled', data: eventData(expired) });
          }
        }
        return 'processed' as const;
      });
      if (refundAfter) await refundIfPaid(refundAfter);
      return outcome;
    },

    transitions: (id: string) => repo.transitions(id),

    /** A subscription's every status change with who made it and when, oldest first; NOT_FOUND outside the reviewer's orgs. */
    async timeline(reviewer: Reviewer, id: string) {
      if (!(await repo.find(reviewerOrg(reviewer), id))) throw notFound('subscription');
      return repo.transitions(id);
    },
  };
}

export type SubscriptionsService = ReturnType<typeof subscriptionsService>;
