import type { AuditWriter } from '../../platform/audit/audit.service.ts';
import { randomBytes, randomInt } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Clock } from '../../platform/clock.ts';
import { constantTimeEqual } from '../../platform/crypto/compare.ts';
import { keyedHash } from '../../platform/crypto/envelope.ts';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import type { CounterAlong, CounterHit } from '../../platform/http/rate-limit-store.ts';
import type { Mailer } from '../../platform/mail/mailer.ts';
import type { AccountsService } from '../accounts/accounts.service.ts';
import type { NewSigner } from '../accounts/accounts.repo.ts';
import type { IdentitiesService } from '../identities/identities.service.ts';
import type { InvitesService } from '../invites/invites.service.ts';
import { badRequest, conflict, forbidden, notFound } from '../jsonapi.ts';
import { keyserverSealer } from '../at-rest.ts';
import type { Tfa } from './tfa.ts';
import { walletsRepo, type WalletRow } from './wallets.repo.ts';

/** KDF parameter sets (research/tokend.md §3.1); v2 lower-cases emails and is the default. */
export const KDF_VERSIONS: Record<number, { algorithm: 'scrypt'; bits: number; n: number; r: number; p: number }> = {
  1: { algorithm: 'scrypt', bits: 256, n: 4096, r: 8, p: 1 },
  2: { algorithm: 'scrypt', bits: 256, n: 4096, r: 8, p: 1 },
};
export const DEFAULT_KDF_VERSION = 2;

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const EMAIL_VERIFICATION_TYPE = 1;

export type WalletsOptions = {
  db: Db;
  keyring: Keyring;
  clock: Clock;
  mailer: Mailer;
  accounts: AccountsService;
  identities: IdentitiesService;
  invites: InvitesService;
  tfa: Tfa;
  emailVerification: boolean;
  clientUrl: string;
  defaultSignerRole: number;
  kycRecoverySignerRole: number;
  sessionTtlSeconds: number;
  audit: AuditWriter;
};

export type PasswordFactorInput = { accountId: string; salt: string; keychainData: string };
export type WalletInput = { walletId: string; email: string; accountId: string; salt: string; keychainData: string; kdfVersion: number };
export type Session = { id: string; encryptionKey: string; expiresAt: Date };
/** Login's brute-force guard: a counter hit that rides in login's read, and what to do with it (throw 429 past the limit). */
export type LoginGuard = { counter: CounterAlong; admit(hit: CounterHit): void };

/** `<client>/<base64url({"type":1,"meta":{wallet_id,token}})>`, the link TokenD clients decode. */
export function verificationLink(clientUrl: string, walletId: string, token: string): string {
  const payload = Buffer.from(JSON.stringify({ type: EMAIL_VERIFICATION_TYPE, meta: { wallet_id: walletId, token } })).toString(
    'base64url',
  );
  return `${clientUrl}/${payload}`;
}

export function createWalletsService(options: WalletsOptions) {
  const { db, keyring, clock, accounts, tfa } = options;
  const repo = walletsRepo(db, keyserverSealer(keyring));

  const emailToken = () => Array.from({ length: 20 }, () => LETTERS[randomInt(LETTERS.length)]).join('');
  const tokenDigest = (email: string, token: string) => keyedHash(keyring, 'wallet-token', `${email}:${token}`);

  /** Queues the verification link in `tx`, the transaction that stored the token's digest. */
  async function sendVerification(wallet: WalletRow, token: string, tx: Executor) {
    await options.mailer.queue(
      {
        to: wallet.email,
        subject: 'Confirm your email',
        text: `Confirm your email address by opening this link:\n\n${verificationLink(options.clientUrl, wallet.walletId, token)}\n`,
      },
      tx,
    );
  }

  /**
   * Opens a session and records it in the audit log: on `db`, the insert and the entry are one
   * statement (one round trip, atomic without a transaction); in `tx`, both join it.
   */
  async function startSession(wallet: WalletRow, tx: Executor = db): Promise<Session> {
    const id = randomBytes(16).toString('hex');
    const encryptionKey = randomBytes(32).toString('hex');
    const expiresAt = new Date(clock.now().getTime() + options.sessionTtlSeconds * 1000);
    // The session id is a bearer secret: the entry names the wallet (its row id, not the wallet id
    // the client derives from the password) and nothing of the session.
    await options.audit.recordWith(
      tx,
      {
        orgId: null,
        chain: `keyserver:${wallet.id.slice(0, 1)}`,
        action: 'keyserver.session.created',
        subject: { type: 'wallet', id: wallet.id },
        actor: { kind: 'user', id: `wallet:${wallet.id}` },
        details: { expires_at: expiresAt.toISOString() },
      },
      repo.sessionInsert({ id, walletPk: wallet.id, expiresAt, encryptionKey }, tx),
    );
    return { id, encryptionKey, expiresAt };
  }

  /**
   * Sign-up. With email verification on, the wallet starts unverified and a link is mailed, unless
   * `verificationCode` is the code of an invite sent to this email, which proves it already.
   * When an admin opened an unregistered identity for the email, the wallet takes over its account
   * instead of opening one; the client's signers join it once the email is proven, never before.
   */
  async function create(input: WalletInput, passwordFactor: PasswordFactorInput, signers: NewSigner[], verificationCode?: string) {
    const token = emailToken();
    const result = await db.transaction(async (tx) => {
      const provenByInvite = verificationCode !== undefined && (await options.invites.provesEmail(input.email, verificationCode, tx));
      if (options.emailVerification && verificationCode !== undefined && !provenByInvite) {
        throw badRequest('/data/attributes/verification_code', 'is not the code of an invitation sent to this email');
      }
      const verified = !options.emailVerification || provenByInvite;
      const unregistered = await options.identities.unregisteredByEmail(input.email, tx);
      const accountId = unregistered?.address ?? input.accountId;
      if (!unregistered) await accounts.createAccount(accountId, signers, tx);
      const wallet = await repo.insert(
        {
          ...input,
          accountId,
          currentAccountId: input.accountId,
          verified,
          ...(verified ? {} : { verificationDigest: tokenDigest(input.email, token), verificationSentAt: clock.now() }),
          ...(unregistered && !verified ? { pendingSigners: signers } : {}),
        },
        tx,
      );
      if (!wallet) throw conflict('wallet already exists');
      if (unregistered && verified) await accounts.addSigners(accountId, signers, tx);
      if (!unregistered || verified) await options.identities.activate(accountId, input.email, tx);
      const factor = await repo.insertFactor({ walletPk: wallet.id, type: 'password', priority: 100, ...passwordFactor }, tx);
      if (!verified) await sendVerification(wallet, token, tx);
      return { wallet, factorId: factor!.id, session: await startSession(wallet, tx) };
    });
    return result;
  }

  async function mustFind(walletId: string): Promise<WalletRow> {
    const wallet = await repo.byWalletId(walletId);
    if (!wallet) throw notFound('wallet not found');
    return wallet;
  }

  /**
   * Login, in two round trips when no second factor applies: the brute-force counter's hit rides
   * in the read of the wallet and its factors, and `guard.admit` refuses (429) past the limit
   * before anything about the wallet is told; then verification and enabled TOTP factors are
   * checked, and the session is opened with its audit entry in one statement.
   */
  async function get(request: FastifyRequest, walletId: string, guard: LoginGuard) {
    const { along, found } = await repo.byWalletIdWithFactors(walletId, guard.counter);
    guard.admit(guard.counter.result(along));
    if (!found) throw notFound('wallet not found');
    const { wallet, factors } = found;
    if (!wallet.verified) {
      throw forbidden({ code: 'verification_required', detail: 'Email verification required', meta: { wallet_id: wallet.walletId } });
    }
    await tfa.require(request, wallet, { mixin: 'login', types: ['totp'] }, factors);
    const session = await startSession(wallet);
    return { wallet, factorId: factors.find((factor) => factor.type === 'password')?.id, session };
  }

  /**
   * Password change and seed recovery: the envelope replaces the account's signers and the wallet
   * takes the new id and keychain, in one transaction or not at all.
   */
  async function update(
    request: FastifyRequest,
    urlWalletId: string,
    input: WalletInput,
    passwordFactor: PasswordFactorInput,
    envelope: string,
  ) {
    const byId = await repo.byWalletId(urlWalletId);
    const wallet = byId ?? (await repo.byEmail(input.email));
    if (!wallet) throw notFound('wallet not found');
    await accounts.authorize(request, { owner: wallet.accountId });
    const recovering = byId === undefined;
    if (!recovering) {
      await tfa.require(request, wallet, { mixin: 'pwd-check', types: ['password'] });
      await tfa.require(request, wallet, { mixin: 'totp-check', types: ['totp'] });
    }
    if (input.email !== wallet.email) throw badRequest('/data/attributes/email', 'does not match the wallet');
    return db.transaction(async (tx) => {
      await claimWalletId(wallet, input.walletId, tx);
      await accounts.applyEnvelope(envelope, wallet.accountId, tx, '/included/0/attributes/envelope');
      return storeKeychain(wallet, input, passwordFactor, tx);
    });
  }

  /** Locks the wallet for a keychain change; 409 when it changed meanwhile or the new id is taken. */
  async function claimWalletId(wallet: WalletRow, newWalletId: string, tx: Executor) {
    const locked = await repo.lock(wallet.id, tx);
    if (!locked || locked.walletId !== wallet.walletId) throw conflict('wallet changed concurrently; retry');
    if (await repo.walletIdTaken(newWalletId, wallet.id, tx)) throw conflict('wallet already exists');
  }

  /** New id, keychain and password factor; the sessions and challenges of the old credentials end. */
  async function storeKeychain(wallet: WalletRow, input: WalletInput, passwordFactor: PasswordFactorInput, tx: Executor) {
    const { walletId, salt, keychainData, kdfVersion, accountId } = input;
    const updated = await repo.update(
      wallet.id,
      { credentials: { walletId, email: wallet.email }, salt, keychainData, kdfVersion, currentAccountId: accountId },
      tx,
    );
    const password = (await repo.factors(wallet.id, tx)).find((factor) => factor.type === 'password');
    if (password) await repo.updateFactor(password.id, { ...passwordFactor, failedAttempts: 0, lockedUntil: null }, tx);
    else await repo.insertFactor({ walletPk: wallet.id, type: 'password', priority: 100, ...passwordFactor }, tx);
    await repo.deleteSessions([wallet.id], tx);
    await repo.clearChallenges(wallet.id, clock.now(), tx);
    return updated;
  }

  /**
   * KYC recovery: a user who lost both password and recovery seed proves the email (an emailed
   * code) and gets a new keychain; the new key joins the account only with the restricted KYC
   * recovery role, so it can file a recovery request but not act as the owner.
   */
  async function kycRecover(
    request: FastifyRequest,
    input: Omit<WalletInput, 'accountId'> & { signer: string },
    passwordFactor: PasswordFactorInput,
  ) {
    const wallet = await repo.byEmail(input.email);
    if (!wallet) throw notFound('wallet not found');
    if ((await accounts.signerKey(request)) !== input.signer)
      throw badRequest('/data/relationships/signer/data/id', 'must be the key that signs the request');
    await tfa.require(request, wallet, { mixin: 'kyc-recovery', types: ['email'] });
    return db.transaction(async (tx) => {
      await claimWalletId(wallet, input.walletId, tx);
      await accounts.addSigner(
        wallet.accountId,
        {
          publicKey: input.signer,
          roleId: options.kycRecoverySignerRole,
          weight: 1000,
          identity: 0,
          details: '{"purpose":"kyc_recovery"}',
        },
        tx,
      );
      return storeKeychain(wallet, { ...input, accountId: input.signer }, passwordFactor, tx);
    });
  }

  async function resendVerification(walletId: string) {
    const wallet = await mustFind(walletId);
    if (wallet.verified) throw badRequest('', 'email already confirmed');
    const token = emailToken();
    // The new link replaces the old one only if it is queued: a refused mail (429) leaves the old link valid.
    await db.transaction(async (tx) => {
      const updated = await repo.update(
        wallet.id,
        { verificationDigest: tokenDigest(wallet.email, token), verificationSentAt: clock.now() },
        tx,
      );
      await sendVerification(updated, token, tx);
    });
  }

  /** Confirms the email; a wallet that took over an unregistered identity now gets its signers on that account. */
  async function verifyEmail(walletId: string, token: string) {
    const wallet = await mustFind(walletId);
    if (wallet.verified) return;
    if (!wallet.verificationDigest || !constantTimeEqual(tokenDigest(wallet.email, token), wallet.verificationDigest)) {
      throw badRequest('/data/attributes/token', 'invalid token');
    }
    await db.transaction(async (tx) => {
      const locked = await repo.lock(wallet.id, tx);
      if (!locked || locked.verified) return;
      if (locked.pendingSigners) {
        await accounts.addSigners(locked.accountId, locked.pendingSigners, tx);
        await options.identities.activate(locked.accountId, locked.email, tx);
      }
      await repo.update(wallet.id, { verified: true, verificationDigest: null, pendingSigners: null }, tx);
    });
  }

  async function extendSession(id: string): Promise<Session> {
    const now = clock.now();
    const session = await repo.extendSession(id, now, new Date(now.getTime() + options.sessionTtlSeconds * 1000));
    if (!session) throw notFound('session not found');
    return { id, ...session };
  }

  return {
    create,
    get,
    update,
    kycRecover,
    resendVerification,
    verifyEmail,
    extendSession,
    mustFind,
    async kdfFor(email: string | undefined) {
      if (!email) return { version: DEFAULT_KDF_VERSION, salt: undefined };
      const wallet = await repo.byEmail(email.toLowerCase());
      if (!wallet) throw notFound('KDF not found');
      return { version: wallet.kdfVersion, salt: wallet.salt };
    },
    async remove(walletId: string) {
      await repo.delete(walletId);
    },
    list: (options: { verified?: boolean; offset: number; limit: number }) => repo.list(options),
    /**
     * Changes to an account's contact details need the second factor of its wallet when one is
     * enabled (403 tfa_required, then the verified request again); accounts without a wallet pass.
     */
    async requireSecondFactor(request: FastifyRequest, accountId: string, purpose: string) {
      const wallet = await repo.byAccountId(accountId);
      if (wallet) await tfa.require(request, wallet, { mixin: purpose, types: ['totp'] });
    },
    factors: (wallet: WalletRow) => repo.factors(wallet.id),
    factor: (wallet: WalletRow, factorId: number) => repo.factor(wallet.id, factorId),
    updateFactor: (factorId: number, priority: number) => repo.updateFactor(factorId, { priority }),
    deleteFactor: (factorId: number) => repo.deleteFactor(factorId),
    /** Signers a new wallet's account starts with: the client's, or its key with the default role. */
    initialSigners(accountId: string, requested: NewSigner[]): NewSigner[] {
      if (requested.length > 0) return requested;
      return [{ publicKey: accountId, roleId: options.defaultSignerRole, weight: 1000, identity: 1, details: '{}' }];
    },
  };
}

export type WalletsService = ReturnType<typeof createWalletsService>;
