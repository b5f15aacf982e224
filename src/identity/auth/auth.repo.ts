import { and, eq, isNull } from 'drizzle-orm';
import type { Executor } from '../../platform/db/database.ts';
import { refreshTokens } from '../identity.tables.ts';

export type RefreshTokenRow = typeof refreshTokens.$inferSelect;

export function authRepo(db: Executor) {
  return {
    async insertRefreshToken(token: typeof refreshTokens.$inferInsert, tx: Executor = db): Promise<void> {
      await tx.insert(refreshTokens).values(token);
    },
    async lockRefreshToken(digest: string, tx: Executor): Promise<RefreshTokenRow | undefined> {
      const [row] = await tx.select().from(refreshTokens).where(eq(refreshTokens.digest, digest)).for('update');
      return row;
    },
    async markUsed(id: string, tx: Executor): Promise<void> {
      await tx.update(refreshTokens).set({ usedAt: new Date() }).where(eq(refreshTokens.id, id));
    },
    async revokeFamily(familyId: string, tx: Executor = db): Promise<void> {
      await tx
        .update(refreshTokens)
        .set({ revokedAt: new Date() })
        .where(and(eq(refreshTokens.familyId, familyId), isNull(refreshTokens.revokedAt)));
    },
  };
}

export type AuthRepo = ReturnType<typeof authRepo>;
