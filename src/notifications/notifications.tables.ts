import { sql } from 'drizzle-orm';
import { id, createdAt, updatedAt } from '../platform/db/columns.ts';
import { index, integer, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export const webhookEndpoints = pgTable(
  'webhook_endpoints',
  {
    id: id(),
    orgId: uuid('org_id').notNull(),
    url: text('url').notNull(),
    description: text('description'),
    eventTypes: text('event_types').array().notNull(),
    status: text('status', { enum: ['active', 'disabled'] })
      .notNull()
      .default('active'),
    disabledReason: text('disabled_reason'),
    disabledAt: timestamp('disabled_at', { withTimezone: true }),
    /** First failure since the last success; five days of failures disable the endpoint. */
    failingSince: timestamp('failing_since', { withTimezone: true }),
    /**
     * Bumped by every change of the endpoint or its secrets: the dispatcher's cache of its config
     * and unsealed secrets is keyed on it, so a change made by any process is seen at the next claim.
     */
    version: integer('version').notNull().default(1),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [index('webhook_endpoints_org_idx').on(table.orgId)],
);

/** Signing secrets, sealed: the current one has no expiry; rotated ones sign until they expire. */
export const webhookSecrets = pgTable(
  'webhook_secrets',
  {
    id: id(),
    endpointId: uuid('endpoint_id')
      .notNull()
      .references(() => webhookEndpoints.id, { onDelete: 'cascade' }),
    keyId: text('key_id').notNull(),
    wrappedKey: text('wrapped_key').notNull(),
    ciphertext: text('ciphertext').notNull(),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
  },
  (table) => [index('webhook_secrets_endpoint_idx').on(table.endpointId)],
);

/**
 * What an event sends, stored once however many endpoints receive it (the Standard Webhooks
 * "message"): `id` is the event id (the `webhook-id` header) and `body` the exact JSON that is
 * signed and sent, `{"id","type","created_at","org_id","data"}`, built once at fan-out.
 */
export const webhookMessages = pgTable(
  'webhook_messages',
  {
    id: uuid('id').primaryKey(),
    orgId: uuid('org_id').notNull(),
    eventType: text('event_type').notNull(),
    body: text('body').notNull(),
    createdAt: createdAt(),
  },
  (table) => [index('webhook_messages_created_at_idx').on(table.createdAt)],
);

export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: id(),
    orgId: uuid('org_id').notNull(),
    endpointId: uuid('endpoint_id')
      .notNull()
      .references(() => webhookEndpoints.id, { onDelete: 'cascade' }),
    /** The event, and the message its endpoints are sent (`webhook_messages.id`). */
    eventId: uuid('event_id')
      .notNull()
      .references(() => webhookMessages.id),
    eventType: text('event_type').notNull(),
    /**
     * `skipped`: the event happened while the endpoint was disabled; `cancelled`: it was queued when
     * the endpoint was disabled. Recover sends both (and `exhausted`) again.
     */
    status: text('status', { enum: ['pending', 'sending', 'succeeded', 'exhausted', 'cancelled', 'skipped'] }).notNull(),
    attemptCount: integer('attempt_count').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }),
    leaseUntil: timestamp('lease_until', { withTimezone: true }),
    lastStatusCode: integer('last_status_code'),
    lastError: text('last_error'),
    succeededAt: timestamp('succeeded_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    index('webhook_deliveries_pending_idx')
      .on(table.nextAttemptAt)
      .where(sql`status = 'pending'`),
    index('webhook_deliveries_leased_idx')
      .on(table.leaseUntil)
      .where(sql`status = 'sending'`),
    index('webhook_deliveries_endpoint_idx').on(table.endpointId, table.createdAt),
    index('webhook_deliveries_org_idx').on(table.orgId, table.createdAt),
    // The deliveries log's filters, newest first; and retention, oldest first.
    index('webhook_deliveries_org_status_idx').on(table.orgId, table.status, table.createdAt),
    index('webhook_deliveries_org_event_type_idx').on(table.orgId, table.eventType, table.createdAt),
    index('webhook_deliveries_created_at_idx').on(table.createdAt),
    // Retention keeps a message while any delivery of it is left.
    index('webhook_deliveries_event_idx').on(table.eventId),
  ],
);

export const webhookAttempts = pgTable(
  'webhook_attempts',
  {
    id: id(),
    deliveryId: uuid('delivery_id')
      .notNull()
      .references(() => webhookDeliveries.id, { onDelete: 'cascade' }),
    trigger: text('trigger', { enum: ['scheduled', 'manual'] }).notNull(),
    url: text('url').notNull(),
    statusCode: integer('status_code'),
    durationMs: integer('duration_ms').notNull(),
    responseExcerpt: text('response_excerpt'),
    errorKind: text('error_kind', { enum: ['timeout', 'dns', 'connect', 'tls', 'http', 'blocked', 'interrupted', 'secret'] }),
    errorMessage: text('error_message'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  },
  (table) => [index('webhook_attempts_delivery_created_idx').on(table.deliveryId, table.createdAt)],
);
