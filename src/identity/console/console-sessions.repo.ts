import { and, eq, gt, isNull } from 'drizzle-orm';
import type { Executor } from '../../platform/db/database.ts';
import { adminKeys, consoleSessions } from '../identity.tables.ts';

export type ConsoleSessionRow = typeof consoleSessions.$inferSelect;

export function consoleSessionsRepo(db: Executor) {
  return {
    async insert(row: typeof consoleSessions.$inferInsert, tx: Executor = db): Promise<ConsoleSessionRow> {
      const [inserted] = await tx.insert(consoleSessions).values(row).returning();
      return inserted!;
    },
    /**
     * The live session with this token digest: not revoked, not expired at `now`, and (for a
     * platform admin's) its admin key not revoked.
     */
    async findLive(tokenDigest: string, now: Date, tx: Executor = db): Promise<ConsoleSessionRow | undefined> {
      const [row] = await tx
        .select({ session: consoleSessions, keyRevokedAt: adminKeys.revokedAt })
        .from(consoleSessions)
        .leftJoin(adminKeys, eq(adminKeys.id, consoleSessions.adminKeyId))
        .where(and(eq(consoleSessions.tokenDigest, tokenDigest), isNull(consoleSessions.revokedAt), gt(consoleSessions.expiresAt, now)));
      if (!row || row.keyRevokedAt) return undefined;
      return row.session;
    },
    async revoke(tokenDigest: string, now: Date, tx: Executor = db): Promise<void> {
      await tx
        .update(consoleSessions)
        .set({ revokedAt: now })
        .where(and(eq(consoleSessions.tokenDigest, tokenDigest), isNull(consoleSessions.revokedAt)));
    },
  };
}

export type ConsoleSessionsRepo = ReturnType<typeof consoleSessionsRepo>;
