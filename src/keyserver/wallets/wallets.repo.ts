import { and, asc, desc, eq, gt, inArray, lt, or } from 'drizzle-orm';
import type { Sealed } from '../../platform/crypto/envelope.ts';
import type { Executor } from '../../platform/db/database.ts';
import { ksFactors, ksSessions, ksTfaChallenges, ksWallets } from '../keyserver.tables.ts';

export type WalletRow = typeof ksWallets.$inferSelect;
export type FactorRow = typeof ksFactors.$inferSelect;
export type ChallengeRow = typeof ksTfaChallenges.$inferSelect;
export type SessionRow = typeof ksSessions.$inferSelect;
export type NewWallet = typeof ksWallets.$inferInsert;

export function walletsRepo(db: Executor) {
  return {
    async byWalletId(walletId: string, tx: Executor = db): Promise<WalletRow | undefined> {
      const [row] = await tx.select().from(ksWallets).where(eq(ksWallets.walletId, walletId));
      return row;
    },
    async byEmail(email: string, tx: Executor = db): Promise<WalletRow | undefined> {
      const [row] = await tx.select().from(ksWallets).where(eq(ksWallets.email, email));
      return row;
    },
    async byAccountId(accountId: string, tx: Executor = db): Promise<WalletRow | undefined> {
      const [row] = await tx.select().from(ksWallets).where(eq(ksWallets.accountId, accountId));
      return row;
    },
    async lock(pk: string, tx: Executor): Promise<WalletRow | undefined> {
      const [row] = await tx.select().from(ksWallets).where(eq(ksWallets.id, pk)).for('update');
      return row;
    },
    /** Undefined when the wallet id or the email is taken. */
    async insert(wallet: NewWallet, tx: Executor): Promise<WalletRow | undefined> {
      const [row] = await tx.insert(ksWallets).values(wallet).onConflictDoNothing().returning();
      return row;
    },
    async walletIdTaken(walletId: string, exceptPk: string, tx: Executor): Promise<boolean> {
      const [row] = await tx.select({ id: ksWallets.id }).from(ksWallets).where(eq(ksWallets.walletId, walletId));
      return row !== undefined && row.id !== exceptPk;
    },
    async update(pk: string, changes: Partial<NewWallet>, tx: Executor): Promise<WalletRow> {
      const [row] = await tx
        .update(ksWallets)
        .set({ ...changes, updatedAt: new Date() })
        .where(eq(ksWallets.id, pk))
        .returning();
      return row!;
    },
    async delete(walletId: string, tx: Executor = db): Promise<WalletRow | undefined> {
      const [row] = await tx.delete(ksWallets).where(eq(ksWallets.walletId, walletId)).returning();
      return row;
    },
    async list(options: { verified?: boolean; offset: number; limit: number }, tx: Executor = db): Promise<WalletRow[]> {
      return tx
        .select()
        .from(ksWallets)
        .where(options.verified === undefined ? undefined : eq(ksWallets.verified, options.verified))
        .orderBy(asc(ksWallets.createdAt), asc(ksWallets.id))
        .offset(options.offset)
        .limit(options.limit);
    },

    async factors(walletPk: string, tx: Executor = db): Promise<FactorRow[]> {
      return tx.select().from(ksFactors).where(eq(ksFactors.walletPk, walletPk)).orderBy(desc(ksFactors.priority), asc(ksFactors.id));
    },
    async factor(walletPk: string, factorId: number, tx: Executor = db): Promise<FactorRow | undefined> {
      const [row] = await tx
        .select()
        .from(ksFactors)
        .where(and(eq(ksFactors.walletPk, walletPk), eq(ksFactors.id, factorId)));
      return row;
    },
    async lockFactor(factorId: number, tx: Executor): Promise<FactorRow | undefined> {
      const [row] = await tx.select().from(ksFactors).where(eq(ksFactors.id, factorId)).for('update');
      return row;
    },
    /** Undefined when the wallet already has a factor of that type. */
    async insertFactor(factor: typeof ksFactors.$inferInsert, tx: Executor = db): Promise<FactorRow | undefined> {
      const [row] = await tx.insert(ksFactors).values(factor).onConflictDoNothing().returning();
      return row;
    },
    async updateFactor(factorId: number, changes: Partial<typeof ksFactors.$inferInsert>, tx: Executor = db): Promise<void> {
      await tx.update(ksFactors).set(changes).where(eq(ksFactors.id, factorId));
    },
    async deleteFactor(factorId: number, tx: Executor = db): Promise<void> {
      await tx.delete(ksFactors).where(eq(ksFactors.id, factorId));
    },

    async challenge(token: string, tx: Executor = db): Promise<ChallengeRow | undefined> {
      const [row] = await tx.select().from(ksTfaChallenges).where(eq(ksTfaChallenges.token, token));
      return row;
    },
    async lockChallenge(token: string, tx: Executor): Promise<ChallengeRow | undefined> {
      const [row] = await tx.select().from(ksTfaChallenges).where(eq(ksTfaChallenges.token, token)).for('update');
      return row;
    },
    async upsertChallenge(row: typeof ksTfaChallenges.$inferInsert, tx: Executor = db): Promise<void> {
      await tx
        .insert(ksTfaChallenges)
        .values(row)
        .onConflictDoUpdate({
          target: ksTfaChallenges.token,
          set: { factorId: row.factorId, verified: false, codeDigest: row.codeDigest ?? null, expiresAt: row.expiresAt },
        });
    },
    async markChallengeVerified(token: string, tx: Executor): Promise<void> {
      await tx.update(ksTfaChallenges).set({ verified: true }).where(eq(ksTfaChallenges.token, token));
    },
    /** Consumes a verified challenge; true when there was one. */
    async consumeChallenge(token: string, now: Date, tx: Executor = db): Promise<boolean> {
      const rows = await tx
        .delete(ksTfaChallenges)
        .where(and(eq(ksTfaChallenges.token, token), eq(ksTfaChallenges.verified, true), gt(ksTfaChallenges.expiresAt, now)))
        .returning({ token: ksTfaChallenges.token });
      return rows.length > 0;
    },
    async clearChallenges(walletPk: string, now: Date, tx: Executor): Promise<void> {
      await tx.delete(ksTfaChallenges).where(or(eq(ksTfaChallenges.walletPk, walletPk), lt(ksTfaChallenges.expiresAt, now)));
    },

    async insertSession(row: { id: string; walletPk: string; expiresAt: Date } & Sealed, tx: Executor = db): Promise<SessionRow> {
      const [session] = await tx.insert(ksSessions).values(row).returning();
      return session!;
    },
    /** Extends a live session; undefined when it is unknown or expired. */
    async extendSession(id: string, now: Date, expiresAt: Date, tx: Executor = db): Promise<SessionRow | undefined> {
      const [row] = await tx
        .update(ksSessions)
        .set({ expiresAt })
        .where(and(eq(ksSessions.id, id), gt(ksSessions.expiresAt, now)))
        .returning();
      return row;
    },
    async deleteSessions(walletPks: string[], tx: Executor): Promise<void> {
      if (walletPks.length > 0) await tx.delete(ksSessions).where(inArray(ksSessions.walletPk, walletPks));
    },
    async deleteExpiredSessions(now: Date, tx: Executor = db): Promise<void> {
      await tx.delete(ksSessions).where(lt(ksSessions.expiresAt, now));
    },
  };
}

export type WalletsRepo = ReturnType<typeof walletsRepo>;
