import { eq } from 'drizzle-orm';
import type { Sealed } from '../../platform/crypto/envelope.ts';
import type { Executor } from '../../platform/db/database.ts';
import { userPii } from '../identity.tables.ts';

export type PiiRow = typeof userPii.$inferSelect;

export function piiRepo(db: Executor) {
  return {
    async find(userId: string, tx: Executor = db): Promise<PiiRow | undefined> {
      const [row] = await tx.select().from(userPii).where(eq(userPii.userId, userId));
      return row;
    },
    async lock(userId: string, tx: Executor): Promise<PiiRow | undefined> {
      const [row] = await tx.select().from(userPii).where(eq(userPii.userId, userId)).for('update');
      return row;
    },
    /** Returns undefined when the user already has a record. */
    async insert(
      row: { userId: string; orgId: string; ssnDigest: string | null } & Sealed,
      tx: Executor = db,
    ): Promise<PiiRow | undefined> {
      const [inserted] = await tx.insert(userPii).values(row).onConflictDoNothing().returning();
      return inserted;
    },
    async update(userId: string, changes: { ssnDigest: string | null } & Sealed, tx: Executor = db): Promise<PiiRow | undefined> {
      const [row] = await tx
        .update(userPii)
        .set({ ...changes, updatedAt: new Date() })
        .where(eq(userPii.userId, userId))
        .returning();
      return row;
    },
    async delete(userId: string, tx: Executor = db): Promise<boolean> {
      const rows = await tx.delete(userPii).where(eq(userPii.userId, userId)).returning({ userId: userPii.userId });
      return rows.length > 0;
    },
    async lockAll(tx: Executor): Promise<PiiRow[]> {
      return tx.select().from(userPii).for('update');
    },
    async setSealed(userId: string, sealed: Sealed, tx: Executor): Promise<void> {
      await tx.update(userPii).set(sealed).where(eq(userPii.userId, userId));
    },
  };
}

export type PiiRepo = ReturnType<typeof piiRepo>;
