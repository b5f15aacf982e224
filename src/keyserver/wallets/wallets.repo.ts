import { randomUUID } from 'node:crypto';
import { and, asc, desc, eq, gt, inArray, lt, or, type SQL, type WithSubquery } from 'drizzle-orm';
import type { Sealed } from '../../platform/crypto/envelope.ts';
import type { Executor } from '../../platform/db/database.ts';
import { aad, type KeyserverSealer } from '../at-rest.ts';
import { ksFactors, ksSessions, ksTfaChallenges, ksWallets } from '../keyserver.tables.ts';

type StoredWallet = typeof ksWallets.$inferSelect;
/** A wallet as the service sees it: the wallet id and email opened from their sealed document. */
export type WalletRow = Omit<
  StoredWallet,
  'walletIdDigest' | 'emailDigest' | 'keyId' | 'wrappedKey' | 'ciphertext' | 'legacyWalletId' | 'legacyEmail'
> & { walletId: string; email: string };
export type FactorRow = typeof ksFactors.$inferSelect;
export type ChallengeRow = typeof ksTfaChallenges.$inferSelect;
export type SessionRow = typeof ksSessions.$inferSelect;
export type NewWallet = Omit<typeof ksWallets.$inferInsert, keyof StoredWallet> &
  Partial<Omit<WalletRow, 'id' | 'createdAt' | 'updatedAt'>> &
  Pick<WalletRow, 'walletId' | 'email' | 'accountId' | 'currentAccountId' | 'salt' | 'keychainData' | 'kdfVersion'>;
/** What the fields of a CTE riding in a repo's statement come back as. */
type AlongResult<F> = { [K in keyof F]: F[K] extends SQL.Aliased<infer T> ? T : never };
type WalletChanges = Partial<Omit<WalletRow, 'id' | 'walletId' | 'email' | 'createdAt' | 'updatedAt'>> & {
  /** A new wallet id re-seals the wallet's document, so the email it keeps comes along. */
  credentials?: { walletId: string; email: string };
};

/**
 * Wallets, their factors, challenges and sessions. The wallet id (the login credential) and the
 * email are stored sealed and found by their keyed hashes; sessions are keyed by the keyed hash of
 * their id.
 */
export function walletsRepo(db: Executor, sealer: KeyserverSealer) {
  const sealSession = (digest: string, encryptionKey: string): Sealed => sealer.seal(encryptionKey, aad.session(digest));
  const open = (row: StoredWallet): WalletRow => {
    const {
      walletIdDigest: _w,
      emailDigest: _e,
      keyId: _k,
      wrappedKey: _r,
      ciphertext: _c,
      legacyWalletId: _lw,
      legacyEmail: _le,
      ...rest
    } = row;
    return { ...rest, ...sealer.open<{ walletId: string; email: string }>(row, aad.wallet(row.id)) };
  };
  const sealed = (pk: string, credentials: { walletId: string; email: string }) => ({
    walletIdDigest: sealer.digest('wallet-id', credentials.walletId),
    emailDigest: sealer.digest('email', credentials.email),
    ...sealer.seal({ walletId: credentials.walletId, email: credentials.email }, aad.wallet(pk)),
  });
  const one = (rows: StoredWallet[]) => (rows[0] ? open(rows[0]) : undefined);

  return {
    async byWalletId(walletId: string, tx: Executor = db): Promise<WalletRow | undefined> {
      return one(
        await tx
          .select()
          .from(ksWallets)
          .where(eq(ksWallets.walletIdDigest, sealer.digest('wallet-id', walletId))),
      );
    },
    /**
     * Login's read: the wallet by its id with its factors (highest priority first), and `along`, a
     * CTE of someone else's (login's rate-limit counter hit), all in one statement. The rows start
     * from the CTE's one row, so its fields come back even when no wallet matches; the wallet and
     * factors are left-joined to it (a wallet without factors gives one row with no factor).
     */
    async byWalletIdWithFactors<F extends Record<string, SQL.Aliased>>(
      walletId: string,
      along: { cte: WithSubquery; fields: F },
      tx: Executor = db,
    ): Promise<{ along: AlongResult<F>; found?: { wallet: WalletRow; factors: FactorRow[] } }> {
      const fields: Record<string, SQL.Aliased> = along.fields;
      const rows = await tx
        .with(along.cte)
        .select({ along: fields, wallet: ksWallets, factor: ksFactors })
        .from(along.cte)
        .leftJoin(ksWallets, eq(ksWallets.walletIdDigest, sealer.digest('wallet-id', walletId)))
        .leftJoin(ksFactors, eq(ksFactors.walletPk, ksWallets.id))
        .orderBy(desc(ksFactors.priority), asc(ksFactors.id));
      const first = rows[0]!;
      const alongResult = first.along as AlongResult<F>;
      if (!first.wallet) return { along: alongResult };
      return {
        along: alongResult,
        found: { wallet: open(first.wallet), factors: rows.flatMap((row) => (row.factor ? [row.factor] : [])) },
      };
    },
    async byEmail(email: string, tx: Executor = db): Promise<WalletRow | undefined> {
      return one(
        await tx
          .select()
          .from(ksWallets)
          .where(eq(ksWallets.emailDigest, sealer.digest('email', email))),
      );
    },
    async byAccountId(accountId: string, tx: Executor = db): Promise<WalletRow | undefined> {
      return one(await tx.select().from(ksWallets).where(eq(ksWallets.accountId, accountId)));
    },
    async lock(pk: string, tx: Executor): Promise<WalletRow | undefined> {
      return one(await tx.select().from(ksWallets).where(eq(ksWallets.id, pk)).for('update'));
    },
    /** Undefined when the wallet id or the email is taken. */
    async insert(wallet: NewWallet, tx: Executor): Promise<WalletRow | undefined> {
      const { walletId, email, ...rest } = wallet;
      const id = randomUUID();
      return one(
        await tx
          .insert(ksWallets)
          .values({ ...rest, id, ...sealed(id, { walletId, email }) })
          .onConflictDoNothing()
          .returning(),
      );
    },
    async walletIdTaken(walletId: string, exceptPk: string, tx: Executor): Promise<boolean> {
      const [row] = await tx
        .select({ id: ksWallets.id })
        .from(ksWallets)
        .where(eq(ksWallets.walletIdDigest, sealer.digest('wallet-id', walletId)));
      return row !== undefined && row.id !== exceptPk;
    },
    async update(pk: string, changes: WalletChanges, tx: Executor): Promise<WalletRow> {
      const { credentials, ...rest } = changes;
      const [row] = await tx
        .update(ksWallets)
        .set({ ...rest, ...(credentials ? sealed(pk, credentials) : {}), updatedAt: new Date() })
        .where(eq(ksWallets.id, pk))
        .returning();
      return open(row!);
    },
    async delete(walletId: string, tx: Executor = db): Promise<WalletRow | undefined> {
      return one(
        await tx
          .delete(ksWallets)
          .where(eq(ksWallets.walletIdDigest, sealer.digest('wallet-id', walletId)))
          .returning(),
      );
    },
    async list(options: { verified?: boolean; offset: number; limit: number }, tx: Executor = db): Promise<WalletRow[]> {
      const rows = await tx
        .select()
        .from(ksWallets)
        .where(options.verified === undefined ? undefined : eq(ksWallets.verified, options.verified))
        .orderBy(asc(ksWallets.createdAt), asc(ksWallets.id))
        .offset(options.offset)
        .limit(options.limit);
      return rows.map(open);
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

    /**
     * The statement that stores a session under the keyed hash of its id, with its encryption key
     * sealed: built, not run (await it to run it, or give it to the audit writer's `recordWith`).
     */
    sessionInsert(row: { id: string; walletPk: string; expiresAt: Date; encryptionKey: string }, tx: Executor = db) {
      const digest = sealer.sessionDigest(row.id);
      return tx
        .insert(ksSessions)
        .values({ id: digest, walletPk: row.walletPk, expiresAt: row.expiresAt, ...sealSession(digest, row.encryptionKey) });
    },
    /** Extends a live session; its encryption key, or undefined when it is unknown or expired. */
    async extendSession(
      id: string,
      now: Date,
      expiresAt: Date,
      tx: Executor = db,
    ): Promise<{ encryptionKey: string; expiresAt: Date } | undefined> {
      const digest = sealer.sessionDigest(id);
      const [row] = await tx
        .update(ksSessions)
        .set({ expiresAt })
        .where(and(eq(ksSessions.id, digest), gt(ksSessions.expiresAt, now)))
        .returning();
      return row && { encryptionKey: sealer.open<string>(row, aad.session(digest)), expiresAt: row.expiresAt };
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
