import { sql } from 'drizzle-orm';
import { id, createdAt } from './db/columns.ts';
import { bigint, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

/** Events written in the same transaction as the change that causes them; notifications delivers them. */
export const outboxEvents = pgTable(
  'outbox_events',
  {
    id: id(),
    orgId: uuid('org_id'),
    type: text('type').notNull(),
    data: jsonb('data').notNull(),
    createdAt: createdAt(),
    /** Set when notifications has turned the event into deliveries. */
    dispatchedAt: timestamp('dispatched_at', { withTimezone: true }),
  },
  (table) => [
    index('outbox_events_created_at_idx').on(table.createdAt),
    index('outbox_events_undispatched_idx')
      .on(table.createdAt)
      .where(sql`dispatched_at is null`),
  ],
);

export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    scope: text('scope').notNull(),
    key: text('key').notNull(),
    requestHash: text('request_hash').notNull(),
    state: text('state', { enum: ['in_progress', 'committed', 'completed'] }).notNull(),
    responseStatus: integer('response_status'),
    responseKeyId: text('response_key_id'),
    responseWrappedKey: text('response_wrapped_key'),
    responseCiphertext: text('response_ciphertext'),
    /** The request that holds the key while in progress; only it may complete or release the record. */
    owner: uuid('owner'),
    /** An in-progress record past this time was left by a crashed process: a retry may take it over. */
    leaseUntil: timestamp('lease_until', { withTimezone: true }),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (table) => [primaryKey({ columns: [table.scope, table.key] }), index('idempotency_keys_expires_at_idx').on(table.expiresAt)],
);

export const rateLimitCounters = pgTable('rate_limit_counters', {
  key: text('key').primaryKey(),
  count: integer('count').notNull(),
  resetAt: timestamp('reset_at', { withTimezone: true }).notNull(),
});

/** Mail the embedded default keeps instead of sending over SMTP (readable through the admin API). */
export const mailOutbox = pgTable(
  'mail_outbox',
  {
    id: id(),
    /** Keyed hash of the lower-cased recipient, for the admin's filter. */
    recipientDigest: text('recipient_digest'),
    /** `{ to, subject, text }`, sealed: the mail carries emails, verification links and codes. */
    keyId: text('key_id'),
    wrappedKey: text('wrapped_key'),
    ciphertext: text('ciphertext'),
    /** Plaintext of mail kept before sealing at rest; null once the start-up step sealed it. */
    legacyRecipient: text('recipient'),
    legacySubject: text('subject'),
    legacyBody: text('body'),
    createdAt: createdAt(),
    /**
     * `kept`: no SMTP server was configured when it was queued, so it stays here to be read;
     * `pending`: the mail sender is to send it (at `next_attempt_at`); `sent`; `failed`: refused
     * for good by the SMTP server, or still not accepted after the last retry.
     */
    status: text('status', { enum: ['kept', 'pending', 'sent', 'failed'] })
      .notNull()
      .default('kept'),
    /** SMTP attempts made, successful or not. */
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }),
    /** A sender claimed it until then; another sender takes it over only after. */
    leaseUntil: timestamp('lease_until', { withTimezone: true }),
    /** The claim of the sender that holds the lease: only it records the outcome. */
    claimToken: uuid('claim_token'),
    sentAt: timestamp('sent_at', { withTimezone: true }),
    /** Why the last attempt failed: the SMTP reply code or the socket error code, never an address. */
    lastError: text('last_error'),
  },
  (table) => [
    index('mail_outbox_recipient_digest_idx').on(table.recipientDigest, table.createdAt),
    index('mail_outbox_status_created_idx').on(table.status, table.createdAt),
    index('mail_outbox_due_idx')
      .on(table.nextAttemptAt)
      .where(sql`status = 'pending'`),
  ],
);

/**
 * One check value per key the deployment uses (HMACs of a constant, which reveal nothing of the
 * keys): a process started with other keys finds a mismatch here and refuses to serve.
 */
export const keyChecks = pgTable(
  'key_checks',
  {
    kind: text('kind', { enum: ['hash_secret', 'master_key'] }).notNull(),
    /** The master key id; empty for the hash secret. */
    keyId: text('key_id').notNull(),
    checkValue: text('check_value').notNull(),
    createdAt: createdAt(),
  },
  (table) => [primaryKey({ columns: [table.kind, table.keyId] })],
);

/**
 * The head of one audit chain: `org:<uuid>` per org, `platform` for changes that belong to no
 * org. Locked `FOR UPDATE` by each append, so appends to one chain serialise and other chains'
 * don't wait.
 */
export const auditChains = pgTable('audit_chains', {
  chainId: text('chain_id').primaryKey(),
  orgId: uuid('org_id'),
  /** Number of entries in the chain (the newest entry's `seq`); 0 before the first. */
  seq: bigint('seq', { mode: 'number' }).notNull(),
  /** SHA-256 (hex) of the newest entry; the genesis hash (64 zeros) before the first. */
  headHash: text('head_hash').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * The audit log: append-only, one row per consequential change, hash-chained per chain. `hash` is
 * SHA-256 over the canonical JSON of every other column (see `entryHash`), `prev_hash` the
 * previous entry's `hash`. No PII in clear: `state_digest` is a keyed hash of the before/after
 * state and `details` carries ids and statuses only.
 */
export const auditEntries = pgTable(
  'audit_entries',
  {
    id: uuid('id').primaryKey(),
    chainId: text('chain_id').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    orgId: uuid('org_id'),
    actorKind: text('actor_kind', { enum: ['user', 'org_admin', 'platform_staff', 'api_key', 'system'] }).notNull(),
    actorId: text('actor_id'),
    action: text('action').notNull(),
    subjectType: text('subject_type').notNull(),
    subjectId: text('subject_id').notNull(),
    /** Other records this entry belongs to (`type:id`), so a subject's timeline finds it. */
    related: text('related').array().notNull(),
    requestId: text('request_id'),
    stateDigest: text('state_digest'),
    details: jsonb('details').notNull(),
    occurredAt: timestamp('occurred_at', { withTimezone: true }).notNull(),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
  },
  (table) => [
    uniqueIndex('audit_entries_chain_seq_idx').on(table.chainId, table.seq),
    index('audit_entries_org_time_idx').on(table.orgId, table.occurredAt),
    index('audit_entries_subject_idx').on(table.subjectType, table.subjectId),
    index('audit_entries_related_idx').using('gin', table.related),
  ],
);

/** A signed checkpoint of a chain's head: entries deleted after it are caught by `audit verify`. */
export const auditAnchors = pgTable(
  'audit_anchors',
  {
    id: id(),
    chainId: text('chain_id').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    headHash: text('head_hash').notNull(),
    /** Compact JWS (RS256, the platform's anchor signing key) over `{ chain_id, seq, head_hash, anchored_at }`. */
    signature: text('signature').notNull(),
    createdAt: createdAt(),
  },
  (table) => [index('audit_anchors_chain_idx').on(table.chainId, table.seq)],
);
