import { and, asc, eq } from 'drizzle-orm';
import type { Executor } from '../../platform/db/database.ts';
import { stripeDoubleIdempotencyKeys, stripeDoubleObjects } from './stripe-double.tables.ts';

export type StripeObjectType = (typeof stripeDoubleObjects.$inferSelect)['objectType'];
export type StoredObject = { id: string; objectType: StripeObjectType; relatedId: string | null; body: string };

/** The Stripe double's objects (JSON text) and idempotency keys. */
export function stripeDoubleRepo(db: Executor) {
  const columns = {
    id: stripeDoubleObjects.id,
    objectType: stripeDoubleObjects.objectType,
    relatedId: stripeDoubleObjects.relatedId,
    body: stripeDoubleObjects.body,
  };
  return {
    async insert(object: StoredObject, tx: Executor = db): Promise<void> {
      await tx.insert(stripeDoubleObjects).values(object);
    },
    async find(id: string, objectType: StripeObjectType, tx: Executor = db): Promise<StoredObject | undefined> {
      const [row] = await tx
        .select(columns)
        .from(stripeDoubleObjects)
        .where(and(eq(stripeDoubleObjects.id, id), eq(stripeDoubleObjects.objectType, objectType)));
      return row;
    },
    /** The object, locked until the transaction ends (two payments of one session run one at a time). */
    async lock(id: string, objectType: StripeObjectType, tx: Executor): Promise<StoredObject | undefined> {
      const [row] = await tx
        .select(columns)
        .from(stripeDoubleObjects)
        .where(and(eq(stripeDoubleObjects.id, id), eq(stripeDoubleObjects.objectType, objectType)))
        .for('update');
      return row;
    },
    async update(id: string, changes: { body: string; relatedId?: string | null }, tx: Executor = db): Promise<void> {
      await tx.update(stripeDoubleObjects).set(changes).where(eq(stripeDoubleObjects.id, id));
    },
    /** Objects of one type, oldest first; `relatedId` narrows to those belonging to one object. */
    async list(objectType: StripeObjectType, relatedId?: string, tx: Executor = db): Promise<StoredObject[]> {
      return tx
        .select(columns)
        .from(stripeDoubleObjects)
        .where(and(eq(stripeDoubleObjects.objectType, objectType), relatedId ? eq(stripeDoubleObjects.relatedId, relatedId) : undefined))
        .orderBy(asc(stripeDoubleObjects.seq));
    },
    async findIdempotent(key: string, tx: Executor = db) {
      const [row] = await tx.select().from(stripeDoubleIdempotencyKeys).where(eq(stripeDoubleIdempotencyKeys.key, key));
      return row;
    },
    /** Records the first response for a key; a concurrent first use keeps whichever landed first. */
    async saveIdempotent(key: string, request: string, response: string, tx: Executor = db): Promise<void> {
      await tx.insert(stripeDoubleIdempotencyKeys).values({ key, request, response }).onConflictDoNothing();
    },
  };
}

export type StripeDoubleRepo = ReturnType<typeof stripeDoubleRepo>;
