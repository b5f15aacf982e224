import { and, eq, gt, inArray, lt, notInArray, sql } from 'drizzle-orm';
import type { Executor } from '../../platform/db/database.ts';
import { ksAccounts, ksSignatureReplays, ksSigners, ksTransactions } from '../keyserver.tables.ts';

export type SignerRow = typeof ksSigners.$inferSelect;
export type NewSigner = Omit<SignerRow, 'accountId' | 'createdAt'>;

export function accountsRepo(db: Executor) {
  return {
    /**
     * Records a signature as used until `expiresAt`; false when it was already used and has not
     * expired (an expired entry is taken over). One statement, so concurrent replays race safely.
     */
    async rememberSignature(signatureDigest: string, now: Date, expiresAt: Date, tx: Executor = db): Promise<boolean> {
      const rows = await tx
        .insert(ksSignatureReplays)
        .values({ signatureDigest, expiresAt })
        .onConflictDoUpdate({
          target: ksSignatureReplays.signatureDigest,
          set: { expiresAt: sql`excluded.expires_at` },
          setWhere: lt(ksSignatureReplays.expiresAt, now),
        })
        .returning({ digest: ksSignatureReplays.signatureDigest });
      return rows.length > 0;
    },
    async forgetExpiredSignatures(now: Date, tx: Executor = db): Promise<void> {
      await tx.delete(ksSignatureReplays).where(lt(ksSignatureReplays.expiresAt, now));
    },
    async masterAccountId(tx: Executor = db): Promise<string | undefined> {
      const [row] = await tx.select({ id: ksAccounts.id }).from(ksAccounts).where(eq(ksAccounts.isMaster, true));
      return row?.id;
    },
    /** False when the account already exists. */
    async insertAccount(id: string, isMaster: boolean, tx: Executor = db): Promise<boolean> {
      const rows = await tx.insert(ksAccounts).values({ id, isMaster }).onConflictDoNothing().returning({ id: ksAccounts.id });
      return rows.length > 0;
    },
    async exists(id: string, tx: Executor = db): Promise<boolean> {
      const [row] = await tx.select({ id: ksAccounts.id }).from(ksAccounts).where(eq(ksAccounts.id, id));
      return row !== undefined;
    },
    async insertSigners(accountId: string, signers: NewSigner[], tx: Executor): Promise<void> {
      if (signers.length > 0) await tx.insert(ksSigners).values(signers.map((signer) => ({ ...signer, accountId })));
    },
    async signers(accountId: string, tx: Executor = db, options: { lock?: boolean } = {}): Promise<SignerRow[]> {
      const query = tx.select().from(ksSigners).where(eq(ksSigners.accountId, accountId)).orderBy(ksSigners.createdAt, ksSigners.publicKey);
      return options.lock ? query.for('update') : query;
    },
    /** Whether `publicKey` signs for one of `accountIds` with weight > 0 and a role not excluded. */
    async isSigner(accountIds: string[], publicKey: string, excludedRoles: number[], tx: Executor = db): Promise<string | undefined> {
      const [row] = await tx
        .select({ accountId: ksSigners.accountId })
        .from(ksSigners)
        .where(
          and(
            eq(ksSigners.publicKey, publicKey),
            inArray(ksSigners.accountId, accountIds),
            gt(ksSigners.weight, 0),
            excludedRoles.length > 0 ? notInArray(ksSigners.roleId, excludedRoles) : undefined,
          ),
        )
        .limit(1);
      return row?.accountId;
    },
    async upsertSigner(accountId: string, signer: NewSigner, tx: Executor): Promise<void> {
      await tx
        .insert(ksSigners)
        .values({ ...signer, accountId })
        .onConflictDoUpdate({
          target: [ksSigners.accountId, ksSigners.publicKey],
          set: { roleId: signer.roleId, weight: signer.weight, identity: signer.identity, details: signer.details },
        });
    },
    async deleteSigner(accountId: string, publicKey: string, tx: Executor): Promise<boolean> {
      const rows = await tx
        .delete(ksSigners)
        .where(and(eq(ksSigners.accountId, accountId), eq(ksSigners.publicKey, publicKey)))
        .returning({ publicKey: ksSigners.publicKey });
      return rows.length > 0;
    },
    /** False when the transaction was applied before. */
    async recordTransaction(hash: string, accountId: string, tx: Executor): Promise<boolean> {
      const rows = await tx
        .insert(ksTransactions)
        .values({ hash, accountId })
        .onConflictDoNothing()
        .returning({ hash: ksTransactions.hash });
      return rows.length > 0;
    },
  };
}

export type AccountsRepo = ReturnType<typeof accountsRepo>;
