import { createHash } from 'node:crypto';
import { Keypair, StrKey } from '@stellar/stellar-base';
import type { FastifyRequest } from 'fastify';
import type { Clock } from '../../platform/clock.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import { DEFAULT_SKEW_SECONDS, SignatureError, verifyEd25519, verifyRequest } from '../httpsig.ts';
import { badRequest, conflict, JsonApiError, transactionFailed, unauthorized } from '../jsonapi.ts';
import { accountsRepo, type NewSigner, type SignerRow } from './accounts.repo.ts';
import { decodeEnvelope, XdrError } from './tokend-xdr.ts';

/** TokenD's recovery signer role: clients keep these signers when they replace the others. */
export const RECOVERY_SIGNER_ROLE = 1;
const MASTER_SIGNER_ROLE = 1;
const ENVELOPE_TYPE_TX = Buffer.from([0, 0, 0, 2]);

/**
 * `signatureSkewSeconds`: the allowed distance of a signed date from our clock; `strictSignatures`:
 * writes must sign date and digest and are accepted once (see httpsig.ts).
 */
export type AccountsOptions = {
  db: Db;
  clock: Clock;
  networkPassphrase: string;
  kycRecoverySignerRole: number;
  signatureSkewSeconds?: number;
  strictSignatures?: boolean;
};
export type Access = 'owner' | 'admin';

export function createAccountsService(options: AccountsOptions) {
  const { db, clock } = options;
  const repo = accountsRepo(db);
  const networkId = createHash('sha256').update(options.networkPassphrase, 'utf8').digest();
  /** Signers with these roles act only where a route names them (KYC recovery), never as owners. */
  const restrictedRoles = [options.kycRecoverySignerRole];
  let masterAccountId: string | undefined;

  /** The admin ("master") account: created once, with no signers until an operator adds one. */
  async function masterAccount(): Promise<string> {
    if (masterAccountId) return masterAccountId;
    const existing = await repo.masterAccountId();
    if (existing) return (masterAccountId = existing);
    await repo.insertAccount(Keypair.random().publicKey(), true);
    return (masterAccountId = (await repo.masterAccountId())!);
  }

  const verified = new WeakMap<FastifyRequest, Promise<string>>();
  let sinceCleanup = 0;

  /** Verifies once per request (a route may authorize twice; the replay cache must see it once). */
  async function verifySignature(request: FastifyRequest): Promise<string> {
    const now = clock.now();
    const skewSeconds = options.signatureSkewSeconds ?? DEFAULT_SKEW_SECONDS;
    let params;
    try {
      params = verifyRequest(
        { method: request.method, url: request.raw.url ?? request.url, headers: request.headers, body: request.rawBody },
        now,
        { skewSeconds, strict: options.strictSignatures },
      );
    } catch (error) {
      if (error instanceof SignatureError) throw unauthorized(error.message);
      throw error;
    }
    if (options.strictSignatures && !['GET', 'HEAD', 'OPTIONS'].includes(request.method)) {
      const digest = createHash('sha256').update(params.signature).digest('hex');
      if (!(await repo.rememberSignature(digest, now, new Date(now.getTime() + 2 * skewSeconds * 1000))))
        throw unauthorized('the signature was already used');
      if (++sinceCleanup >= 100) {
        sinceCleanup = 0;
        await repo.forgetExpiredSignatures(now);
      }
    }
    return params.keyId;
  }

  /** The signature's key; 401 when the request is unsigned, the signature does not verify, or was replayed. */
  function signerKey(request: FastifyRequest): Promise<string> {
    let key = verified.get(request);
    if (!key) verified.set(request, (key = verifySignature(request)));
    return key;
  }

  /**
   * The doorman: passes when the request is signed by a signer (weight > 0) of `owner`, or, with
   * `admin`, of the master account. Answers which of the two it was.
   */
  async function authorize(request: FastifyRequest, rule: { owner?: string; admin?: boolean }): Promise<{ key: string; access: Access }> {
    const key = await signerKey(request);
    const accounts = [...(rule.owner ? [rule.owner] : []), ...(rule.admin ? [await masterAccount()] : [])];
    const matched = accounts.length > 0 ? await repo.isSigner(accounts, key, restrictedRoles) : undefined;
    if (!matched) throw unauthorized('the signer is not allowed to access this resource');
    return { key, access: matched === rule.owner ? 'owner' : 'admin' };
  }

  /** Whether a signed request comes from an owner or admin; undefined for unsigned or foreign requests. */
  async function optionalAccess(request: FastifyRequest, owner: string): Promise<Access | undefined> {
    if (!request.headers.signature && !request.headers.authorization) return undefined;
    try {
      return (await authorize(request, { owner, admin: true })).access;
    } catch (error) {
      if (error instanceof JsonApiError && error.status === 401) return undefined;
      throw error;
    }
  }

  async function createAccount(accountId: string, signers: NewSigner[], tx: Executor): Promise<void> {
    if (!(await repo.insertAccount(accountId, false, tx))) throw conflict('account already exists');
    await repo.insertSigners(accountId, signers, tx);
  }

  /** The hint is the key's last four bytes: it picks the signer a signature claims to be from. */
  function verifiesSignature(publicKey: string, hash: Buffer, hint: Buffer, signature: Buffer): boolean {
    return Buffer.from(StrKey.decodeEd25519PublicKey(publicKey)).subarray(28).equals(hint) && verifyEd25519(publicKey, hash, signature);
  }

  /**
   * Applies a TokenD transaction envelope's signer changes to `accountId`, inside the caller's
   * transaction: the envelope must come from that account, be in its time bounds, be new, and carry
   * a signature of a current signer. The account must keep at least one signer.
   */
  async function applyEnvelope(envelope: string, accountId: string, tx: Executor, field: string): Promise<void> {
    let decoded;
    try {
      decoded = decodeEnvelope(envelope);
    } catch (error) {
      if (error instanceof XdrError) throw badRequest(field, error.message);
      throw error;
    }
    if (decoded.sourceAccount !== accountId) throw badRequest(field, 'transaction source must be the wallet account');
    if (decoded.operations.some((operation) => operation.sourceAccount && operation.sourceAccount !== accountId)) {
      throw badRequest(field, 'operations must act on the wallet account');
    }
    const now = BigInt(Math.floor(clock.now().getTime() / 1000));
    if (decoded.maxTime !== 0n && decoded.maxTime < now) throw transactionFailed('transaction has expired', 'tx_too_late');
    if (decoded.minTime > now) throw transactionFailed('transaction is not valid yet', 'tx_too_early');
    const hash = createHash('sha256')
      .update(Buffer.concat([networkId, ENVELOPE_TYPE_TX, decoded.transactionXdr]))
      .digest();
    const current = await repo.signers(accountId, tx, { lock: true });
    const signedByCurrentSigner = current.some(
      (signer) =>
        signer.weight > 0 && decoded.signatures.some(({ hint, signature }) => verifiesSignature(signer.publicKey, hash, hint, signature)),
    );
    if (!signedByCurrentSigner) throw transactionFailed('transaction is not signed by a signer of the account', 'tx_bad_auth');
    if (!(await repo.recordTransaction(hash.toString('hex'), accountId, tx))) {
      throw transactionFailed('transaction was already applied', 'tx_duplicate');
    }
    const keys = new Set(current.map((signer) => signer.publicKey));
    for (const { change } of decoded.operations) {
      if (change.action === 'remove') {
        if (!keys.delete(change.publicKey)) throw transactionFailed(`signer ${change.publicKey} does not exist`, 'op_signer_not_found');
        await repo.deleteSigner(accountId, change.publicKey, tx);
        continue;
      }
      if (change.action === 'create' && keys.has(change.publicKey)) {
        throw transactionFailed(`signer ${change.publicKey} already exists`, 'op_signer_already_exists');
      }
      if (change.action === 'update' && !keys.has(change.publicKey)) {
        throw transactionFailed(`signer ${change.publicKey} does not exist`, 'op_signer_not_found');
      }
      keys.add(change.publicKey);
      const { publicKey, roleId, weight, identity, details } = change;
      await repo.upsertSigner(accountId, { publicKey, roleId, weight, identity, details }, tx);
    }
    const remaining = await repo.signers(accountId, tx);
    if (!remaining.some((signer) => signer.weight > 0)) throw transactionFailed('the account would have no signer left', 'tx_no_signers');
  }

  return {
    masterAccount,
    authorize,
    optionalAccess,
    signerKey,
    createAccount,
    applyEnvelope,
    signers: (accountId: string, tx?: Executor): Promise<SignerRow[]> => repo.signers(accountId, tx),
    exists: (accountId: string, tx?: Executor) => repo.exists(accountId, tx),
    addSigner: (accountId: string, signer: NewSigner, tx: Executor) => repo.upsertSigner(accountId, signer, tx),
    async addSigners(accountId: string, signers: NewSigner[], tx: Executor): Promise<void> {
      for (const signer of signers) await repo.upsertSigner(accountId, signer, tx);
    },
    /** Adds an admin signer to the master account (CLI and tests). */
    async addAdminSigner(publicKey: string): Promise<void> {
      const master = await masterAccount();
      await repo.upsertSigner(master, { publicKey, roleId: MASTER_SIGNER_ROLE, weight: 1000, identity: 0, details: '{}' }, db);
    },
  };
}

export type AccountsService = ReturnType<typeof createAccountsService>;
