import { sql } from 'drizzle-orm';
import { id, createdAt, updatedAt } from '../platform/db/columns.ts';
import { boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

export const orgs = pgTable('orgs', {
  id: id(),
  name: text('name').notNull(),
  idpIssuer: text('idp_issuer'),
  idpJwksUrl: text('idp_jwks_url'),
  idpAudience: text('idp_audience').notNull(),
  /**
   * Keyed hashes (`user-email`) of the lower-cased emails whose verified owner becomes org_admin;
   * the emails themselves are not kept (nothing shows them).
   */
  adminEmailDigests: text('admin_email_digests')
    .array()
    .notNull()
    .default(sql`'{}'::text[]`),
  /** Plaintext of orgs older than sealing at rest; null once `sealPlaintextRows` ran. */
  legacyAdminEmails: text('admin_emails').array(),
  /**
   * Origins (`https://app.example.com`) the org's users may be sent back to from hosted pages, such
   * as Stripe Checkout's `successUrl` / `cancelUrl`, besides those of CHECKOUT_RETURN_ORIGINS.
   */
  redirectOrigins: text('redirect_origins')
    .array()
    .notNull()
    .default(sql`'{}'::text[]`),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

export const apiKeys = pgTable(
  'api_keys',
  {
    id: id(),
    orgId: uuid('org_id')
      .notNull()
      .references(() => orgs.id, { onDelete: 'cascade' }),
    digest: text('digest').notNull(),
    hint: text('hint').notNull(),
    label: text('label'),
    createdAt: createdAt(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (table) => [uniqueIndex('api_keys_digest_idx').on(table.digest), index('api_keys_org_idx').on(table.orgId)],
);

export const users = pgTable(
  'users',
  {
    id: id(),
    orgId: uuid('org_id')
      .notNull()
      .references(() => orgs.id, { onDelete: 'cascade' }),
    /**
     * Keyed hash (`user-subject`) of the ID token's `sub`: the user's identity within the org. The
     * subject itself is not kept, since many IdPs put an email or a username in it.
     */
    subjectDigest: text('subject_digest'),
    /** Plaintext `sub` of users older than migration 0016; null once `sealPlaintextRows` ran. */
    legacyExternalSubject: text('external_subject'),
    /** Plaintext of users older than sealing at rest; null once `sealPlaintextRows` ran. */
    legacyEmail: text('email'),
    /** Keyed hash (`user-email`) of the lower-cased email, for finding a user by email. */
    emailDigest: text('email_digest'),
    /** The email, sealed (AAD `users.email:<org>:<subject digest>`); null only on rows older than sealing. */
    emailKeyId: text('email_key_id'),
    emailWrappedKey: text('email_wrapped_key'),
    emailCiphertext: text('email_ciphertext'),
    role: text('role', { enum: ['user', 'org_admin'] })
      .notNull()
      .default('user'),
    onboardingCompleted: boolean('onboarding_completed').notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    uniqueIndex('users_org_subject_digest_idx').on(table.orgId, table.subjectDigest),
    index('users_org_email_digest_idx').on(table.orgId, table.emailDigest),
  ],
);

export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    id: id(),
    familyId: uuid('family_id').notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    orgId: uuid('org_id').notNull(),
    digest: text('digest').notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    usedAt: timestamp('used_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex('refresh_tokens_digest_idx').on(table.digest),
    index('refresh_tokens_family_idx').on(table.familyId),
    index('refresh_tokens_user_idx').on(table.userId),
  ],
);

/** PII is one sealed JSON document per user; only the keyed SSN digest is stored beside it. */
export const userPii = pgTable(
  'user_pii',
  {
    userId: uuid('user_id')
      .primaryKey()
      .references(() => users.id, { onDelete: 'cascade' }),
    orgId: uuid('org_id').notNull(),
    keyId: text('key_id').notNull(),
    wrappedKey: text('wrapped_key').notNull(),
    ciphertext: text('ciphertext').notNull(),
    ssnDigest: text('ssn_digest'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [index('user_pii_org_ssn_idx').on(table.orgId, table.ssnDigest)],
);

/** Our token-signing keys and the demo IdP's; private halves sealed under the master key. */
export const signingKeys = pgTable('signing_keys', {
  kid: text('kid').primaryKey(),
  purpose: text('purpose', { enum: ['access_token', 'demo_idp', 'audit_anchor'] }).notNull(),
  publicJwk: jsonb('public_jwk').notNull(),
  keyId: text('key_id').notNull(),
  wrappedKey: text('wrapped_key').notNull(),
  ciphertext: text('ciphertext').notNull(),
  createdAt: createdAt(),
  retiredAt: timestamp('retired_at', { withTimezone: true }),
});

/** Keys for platform administrators (back office across orgs), created by `tranche admin-key create`. */
export const adminKeys = pgTable(
  'admin_keys',
  {
    id: id(),
    digest: text('digest').notNull(),
    label: text('label'),
    createdAt: createdAt(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (table) => [uniqueIndex('admin_keys_digest_idx').on(table.digest)],
);

export const kycVerifications = pgTable(
  'kyc_verifications',
  {
    id: id(),
    orgId: uuid('org_id').notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    status: text('status', {
      enum: ['pending', 'action_required', 'needs_review', 'approved', 'rejected', 'expired', 'error'],
    }).notNull(),
    identityCheck: text('identity_check', { enum: ['not_attempted', 'pending', 'passed', 'failed', 'needs_review'] }).notNull(),
    documentCheck: text('document_check', { enum: ['not_attempted', 'pending', 'passed', 'failed', 'needs_review'] }).notNull(),
    requiredAction: jsonb('required_action').$type<{ type: 'document_scan'; url: string } | null>(),
    provider: text('provider').notNull(),
    providerReference: text('provider_reference'),
    /**
     * Set while the request that created the verification submits it to the provider; a pending
     * verification with no provider reference past this time was interrupted and is failed.
     */
    submitLeaseUntil: timestamp('submit_lease_until', { withTimezone: true }),
    reviewedBy: text('reviewed_by'),
    reviewReason: text('review_reason'),
    submittedAt: timestamp('submitted_at', { withTimezone: true }).notNull().defaultNow(),
    completedAt: timestamp('completed_at', { withTimezone: true }),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    index('kyc_verifications_user_idx').on(table.userId, table.createdAt),
    // Review queues and lists: the org's, by status, newest first.
    index('kyc_verifications_org_status_idx').on(table.orgId, table.status, table.createdAt),
    index('kyc_verifications_org_created_idx').on(table.orgId, table.createdAt),
    // The platform admin's queue, across orgs.
    index('kyc_verifications_status_created_idx').on(table.status, table.createdAt),
    uniqueIndex('kyc_verifications_provider_ref_idx').on(table.provider, table.providerReference),
    uniqueIndex('kyc_verifications_one_open_idx')
      .on(table.userId)
      .where(sql`status in ('pending', 'action_required', 'needs_review')`),
  ],
);

export const accreditations = pgTable(
  'accreditations',
  {
    id: id(),
    orgId: uuid('org_id').notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    status: text('status', {
      enum: ['pending', 'accredited', 'non_accredited', 'qualified_purchaser', 'qualified_client', 'expired'],
    }).notNull(),
    basis: text('basis', { enum: ['income', 'net_worth', 'license_7_65_82', 'entity', 'not_accredited'] }),
    reviewStatus: text('review_status', {
      enum: ['not_required', 'pending_review', 'under_review', 'more_info_needed', 'approved', 'denied', 'expired'],
    }).notNull(),
    reviewedBy: text('reviewed_by'),
    reviewReason: text('review_reason'),
    submittedAt: timestamp('submitted_at', { withTimezone: true }),
    reviewedAt: timestamp('reviewed_at', { withTimezone: true }),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    uniqueIndex('accreditations_user_idx').on(table.orgId, table.userId),
    // The review queue, oldest submission first: one org's, or the platform's.
    index('accreditations_review_idx').on(table.orgId, table.reviewStatus, table.submittedAt),
    index('accreditations_review_all_idx').on(table.reviewStatus, table.submittedAt),
  ],
);

export const accreditationDocuments = pgTable(
  'accreditation_documents',
  {
    id: id(),
    accreditationId: uuid('accreditation_id')
      .notNull()
      .references(() => accreditations.id, { onDelete: 'cascade' }),
    documentType: text('document_type', { enum: ['income_proof', 'net_worth_proof', 'license_proof', 'entity_proof'] }).notNull(),
    fileName: text('file_name').notNull(),
    contentType: text('content_type').notNull(),
    fileSizeBytes: integer('file_size_bytes').notNull(),
    storageKey: text('storage_key').notNull(),
    status: text('status', { enum: ['upload_pending', 'uploaded', 'upload_failed'] }).notNull(),
    failureReason: text('failure_reason'),
    /** When the presigned upload URL stops working; until then a document without a file stays upload_pending. */
    uploadExpiresAt: timestamp('upload_expires_at', { withTimezone: true }),
    /** SHA-256 (hex) of the bytes accepted at finalize; `storage_key` then names a copy no upload URL can reach. */
    sha256: text('sha256'),
    uploadedAt: timestamp('uploaded_at', { withTimezone: true }),
    createdAt: createdAt(),
  },
  (table) => [index('accreditation_documents_accreditation_idx').on(table.accreditationId)],
);

/**
 * Back-office console sign-ins. The cookie holds a random session token; only its keyed hash
 * (`console-session`) is stored. A platform admin's session names the admin key it was opened
 * with (revoking the key ends it); an org admin's names the org and user.
 */
export const consoleSessions = pgTable(
  'console_sessions',
  {
    id: id(),
    tokenDigest: text('token_digest').notNull(),
    adminKeyId: uuid('admin_key_id').references(() => adminKeys.id, { onDelete: 'cascade' }),
    orgId: uuid('org_id').references(() => orgs.id, { onDelete: 'cascade' }),
    userId: uuid('user_id').references(() => users.id, { onDelete: 'cascade' }),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (table) => [uniqueIndex('console_sessions_token_digest_idx').on(table.tokenDigest)],
);
