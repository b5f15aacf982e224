import { bigserial, index, pgTable, text } from 'drizzle-orm/pg-core';
import { createdAt } from '../../platform/db/columns.ts';

/**
 * The local Stripe double's state (only used when no STRIPE_SECRET_KEY is set), kept in the
 * database so a checkout link outlives a restart. Each row is one Stripe object as the API returns
 * it, stored as its exact JSON text: an event's payload must stay byte-for-byte what was signed.
 */
export const stripeDoubleObjects = pgTable(
  'stripe_double_objects',
  {
    id: text('id').primaryKey(),
    seq: bigserial('seq', { mode: 'number' }).notNull(),
    /** Stripe's `object`: checkout.session, payment_intent, refund or event. */
    objectType: text('object_type', { enum: ['checkout.session', 'payment_intent', 'refund', 'event'] }).notNull(),
    /** The object it belongs to: a session's payment intent, a payment intent's session, an event's session, a refund's payment intent. */
    relatedId: text('related_id'),
    body: text('body').notNull(),
    createdAt: createdAt(),
  },
  (table) => [
    index('stripe_double_objects_related_idx').on(table.relatedId),
    index('stripe_double_objects_type_idx').on(table.objectType, table.seq),
  ],
);

/** Stripe's Idempotency-Key: the first request's parameters and response, replayed for the same key. */
export const stripeDoubleIdempotencyKeys = pgTable('stripe_double_idempotency_keys', {
  key: text('key').primaryKey(),
  request: text('request').notNull(),
  response: text('response').notNull(),
  createdAt: createdAt(),
});
