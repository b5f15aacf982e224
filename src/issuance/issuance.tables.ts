import { sql } from 'drizzle-orm';
import { id, createdAt, updatedAt } from '../platform/db/columns.ts';
import {
  bigint,
  boolean,
  check,
  date,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

const money = (name: string) => bigint(name, { mode: 'number' });

export const issuers = pgTable('issuers', {
  id: id(),
  orgId: uuid('org_id').notNull(),
  legalName: text('legal_name').notNull(),
  /** For the OCF export's issuer object: formation date and ISO 3166-1 alpha-2 country (and subdivision code). */
  formationDate: date('formation_date', { mode: 'string' }),
  countryOfFormation: text('country_of_formation'),
  countrySubdivisionOfFormation: text('country_subdivision_of_formation'),
  createdAt: createdAt(),
});

export const offerings = pgTable(
  'offerings',
  {
    id: id(),
    orgId: uuid('org_id').notNull(),
    issuerId: uuid('issuer_id')
      .notNull()
      .references(() => issuers.id),
    name: text('name').notNull(),
    exemptionType: text('exemption_type', {
      enum: ['reg_d_506b', 'reg_d_506c', 'reg_cf', 'reg_a_tier_1', 'reg_a_tier_2', 'reg_s'],
    }).notNull(),
    currency: text('currency').notNull().default('USD'),
    targetAmountCents: money('target_amount_cents').notNull(),
    maximumAmountCents: money('maximum_amount_cents').notNull(),
    minimumInvestmentCents: money('minimum_investment_cents').notNull(),
    maximumInvestmentCents: money('maximum_investment_cents'),
    deadline: date('deadline', { mode: 'string' }).notNull(),
    status: text('status', { enum: ['draft', 'open', 'paused', 'closed'] })
      .notNull()
      .default('draft'),
    openedAt: timestamp('opened_at', { withTimezone: true }),
    closedAt: timestamp('closed_at', { withTimezone: true }),
    /**
     * Running totals of the offering's subscriptions, moved in the transaction of every change that
     * moves them (`totals.repo.ts`), never recounted on a read: the amount of those that hold units
     * (`HOLDING_STATUSES`) and of those funded (`FUNDED_STATUSES`), in cents; the investors with a
     * subscription that holds units, and how many of them declared themselves accredited on one.
     */
    committedCents: money('committed_cents').notNull().default(0),
    raisedCents: money('raised_cents').notNull().default(0),
    investors: integer('investors').notNull().default(0),
    accreditedInvestors: integer('accredited_investors').notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    index('offerings_org_status_idx').on(table.orgId, table.status),
    index('offerings_org_created_idx').on(table.orgId, table.createdAt),
  ],
);

export const securityClasses = pgTable(
  'security_classes',
  {
    id: id(),
    orgId: uuid('org_id').notNull(),
    offeringId: uuid('offering_id')
      .notNull()
      .references(() => offerings.id),
    name: text('name').notNull(),
    category: text('category', { enum: ['equity', 'preferred_equity', 'debt', 'convertible', 'revenue_share', 'fund_interest'] }).notNull(),
    pricePerUnitCents: money('price_per_unit_cents').notNull(),
    unitsAuthorized: integer('units_authorized').notNull(),
    /** Running total of the units of the class's subscriptions that hold units; never above the units authorized. */
    unitsHeld: bigint('units_held', { mode: 'number' }).notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    index('security_classes_offering_idx').on(table.offeringId),
    // The oversell guarantee, kept by the database whatever the code path.
    check('security_classes_units_held_check', sql`${table.unitsHeld} >= 0 and ${table.unitsHeld} <= ${table.unitsAuthorized}`),
  ],
);

/**
 * One investor's part of an offering's running totals: how many of their subscriptions hold units,
 * how many of those declare the investor accredited, and the cents they commit. The offering's
 * investor counts move when these cross zero; the per-investor maximum reads `committed_cents`.
 */
export const offeringInvestors = pgTable(
  'offering_investors',
  {
    offeringId: uuid('offering_id')
      .notNull()
      .references(() => offerings.id),
    userId: uuid('user_id').notNull(),
    holdingSubscriptions: integer('holding_subscriptions').notNull().default(0),
    accreditedSubscriptions: integer('accredited_subscriptions').notNull().default(0),
    committedCents: money('committed_cents').notNull().default(0),
  },
  (table) => [primaryKey({ columns: [table.offeringId, table.userId] })],
);

export const offeringDocuments = pgTable(
  'offering_documents',
  {
    id: id(),
    offeringId: uuid('offering_id')
      .notNull()
      .references(() => offerings.id),
    kind: text('kind', { enum: ['ppm', 'subscription_agreement', 'other'] }).notNull(),
    title: text('title').notNull(),
    version: integer('version').notNull(),
    contentType: text('content_type').notNull(),
    sizeBytes: integer('size_bytes').notNull(),
    sha256: text('sha256').notNull(),
    storageKey: text('storage_key').notNull(),
    createdAt: createdAt(),
  },
  (table) => [uniqueIndex('offering_documents_version_idx').on(table.offeringId, table.kind, table.version)],
);

export const subscriptionStatuses = [
  'draft',
  'pending_signature',
  'pending_payment',
  'pending_review',
  'approved',
  'completed',
  'rejected',
  'cancelled',
] as const;

export const subscriptions = pgTable(
  'subscriptions',
  {
    id: id(),
    orgId: uuid('org_id').notNull(),
    offeringId: uuid('offering_id')
      .notNull()
      .references(() => offerings.id),
    securityClassId: uuid('security_class_id')
      .notNull()
      .references(() => securityClasses.id),
    userId: uuid('user_id').notNull(),
    units: integer('units').notNull(),
    pricePerUnitCents: money('price_per_unit_cents').notNull(),
    amountCents: money('amount_cents').notNull(),
    currency: text('currency').notNull(),
    trancheId: text('tranche_id'),
    paymentMethod: text('payment_method', { enum: ['card', 'us_bank_account'] }).notNull(),
    accreditationStatus: text('accreditation_status', { enum: ['accredited', 'non_accredited'] }).notNull(),
    suitabilityConfirmed: boolean('suitability_confirmed').notNull(),
    riskAcknowledgmentSigned: boolean('risk_acknowledgment_signed').notNull(),
    status: text('status', { enum: subscriptionStatuses }).notNull(),
    /**
     * The signature's evidence that is not PII (signer user id, time, agreement document, version
     * and hash, consent text, method); the PII (signer email and name, IP, user agent) is sealed in
     * the `signer_*` columns.
     */
    signature: jsonb('signature'),
    /** Sealed signer PII (AAD `subscriptions.signer:<id>`); null until signed and on rows older than sealing. */
    signerKeyId: text('signer_key_id'),
    signerWrappedKey: text('signer_wrapped_key'),
    signerCiphertext: text('signer_ciphertext'),
    checkoutSessionId: text('checkout_session_id'),
    checkoutUrl: text('checkout_url'),
    /** The return URLs the open checkout session was created with; another pair opens a new session. */
    checkoutSuccessUrl: text('checkout_success_url'),
    checkoutCancelUrl: text('checkout_cancel_url'),
    checkoutAttempts: integer('checkout_attempts').notNull().default(0),
    paymentIntentId: text('payment_intent_id'),
    paymentStatus: text('payment_status', { enum: ['none', 'processing', 'paid', 'failed', 'refunded'] })
      .notNull()
      .default('none'),
    fundedAt: timestamp('funded_at', { withTimezone: true }),
    reviewedBy: text('reviewed_by'),
    reviewReason: text('review_reason'),
    approvedAt: timestamp('approved_at', { withTimezone: true }),
    completedAt: timestamp('completed_at', { withTimezone: true }),
    cancelledAt: timestamp('cancelled_at', { withTimezone: true }),
    cancelReason: text('cancel_reason'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    // An investor's subscriptions, newest first: all, or in one offering.
    index('subscriptions_user_idx').on(table.orgId, table.userId, table.createdAt),
    index('subscriptions_offering_user_idx').on(table.offeringId, table.userId, table.createdAt),
    // Subscription lists: the org's, by status, by offering, newest first; by status across orgs (a platform admin's queue).
    index('subscriptions_org_created_idx').on(table.orgId, table.createdAt),
    index('subscriptions_org_status_created_idx').on(table.orgId, table.status, table.createdAt),
    index('subscriptions_status_created_idx').on(table.status, table.createdAt),
    index('subscriptions_offering_created_idx').on(table.offeringId, table.createdAt),
    uniqueIndex('subscriptions_checkout_session_idx').on(table.checkoutSessionId),
  ],
);

/** Every status change, with who made it and why: the audit trail of a subscription. */
export const subscriptionTransitions = pgTable(
  'subscription_transitions',
  {
    id: id(),
    subscriptionId: uuid('subscription_id')
      .notNull()
      .references(() => subscriptions.id),
    fromStatus: text('from_status'),
    toStatus: text('to_status').notNull(),
    actor: text('actor').notNull(),
    reason: text('reason'),
    createdAt: createdAt(),
    /**
     * Insertion order. One transaction may change the status twice (approval issues the shares and
     * completes), and both rows then carry the same `created_at`: this orders them.
     */
    seq: bigint('seq', { mode: 'number' }).generatedAlwaysAsIdentity().notNull(),
  },
  (table) => [index('subscription_transitions_subscription_idx').on(table.subscriptionId, table.seq)],
);

/** Payment-provider events already processed: a redelivered event is recognised and ignored. */
export const paymentEvents = pgTable('payment_events', {
  id: text('id').primaryKey(),
  type: text('type').notNull(),
  subscriptionId: uuid('subscription_id'),
  processedAt: timestamp('processed_at', { withTimezone: true }).notNull().defaultNow(),
});

/** The share ledger: append-only, one entry per completed subscription. */
export const shares = pgTable(
  'shares',
  {
    id: id(),
    orgId: uuid('org_id').notNull(),
    userId: uuid('user_id').notNull(),
    subscriptionId: uuid('subscription_id')
      .notNull()
      .references(() => subscriptions.id),
    offeringId: uuid('offering_id')
      .notNull()
      .references(() => offerings.id),
    securityClassId: uuid('security_class_id')
      .notNull()
      .references(() => securityClasses.id),
    units: integer('units').notNull(),
    pricePerUnitCents: money('price_per_unit_cents').notNull(),
    costBasisCents: money('cost_basis_cents').notNull(),
    currency: text('currency').notNull(),
    acquisitionType: text('acquisition_type', { enum: ['primary'] }).notNull(),
    acquisitionDate: date('acquisition_date', { mode: 'string' }).notNull(),
    holdingPeriodEndDate: date('holding_period_end_date', { mode: 'string' }),
    restricted: boolean('restricted').notNull(),
    restrictedUntil: date('restricted_until', { mode: 'string' }),
    status: text('status', { enum: ['active', 'transferred', 'converted', 'redeemed', 'cancelled'] })
      .notNull()
      .default('active'),
    /** The cancelled entry this one re-issues (a ledger correction); null for an original issuance. */
    replacesShareId: uuid('replaces_share_id'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    // One live entry per subscription; a correction cancels it and may re-issue another.
    uniqueIndex('shares_subscription_live_idx')
      .on(table.subscriptionId)
      .where(sql`status <> 'cancelled'`),
    index('shares_subscription_idx').on(table.subscriptionId),
    index('shares_user_idx').on(table.orgId, table.userId, table.createdAt),
  ],
);

/**
 * Ledger corrections: a cancellation of a share entry with its reason (and the entry re-issued in
 * its place, if any). Entries are never edited beyond their status; this is the transaction.
 */
export const shareCancellations = pgTable(
  'share_cancellations',
  {
    id: id(),
    orgId: uuid('org_id').notNull(),
    shareId: uuid('share_id')
      .notNull()
      .references(() => shares.id),
    reason: text('reason').notNull(),
    reissuedShareId: uuid('reissued_share_id').references(() => shares.id),
    cancelledBy: text('cancelled_by').notNull(),
    createdAt: createdAt(),
  },
  (table) => [uniqueIndex('share_cancellations_share_idx').on(table.shareId), index('share_cancellations_org_idx').on(table.orgId)],
);
