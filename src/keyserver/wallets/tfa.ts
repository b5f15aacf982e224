import { createHash, randomInt } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { generateSecret, generateURI, verify as verifyTotp } from 'otplib';
import type { Clock } from '../../platform/clock.ts';
import { constantTimeEqual } from '../../platform/crypto/compare.ts';
import { keyedHash, seal, unseal } from '../../platform/crypto/envelope.ts';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import type { Mailer } from '../../platform/mail/mailer.ts';
import { verifyEd25519 } from '../httpsig.ts';
import { badRequest, forbidden, notFound, tooManyRequests } from '../jsonapi.ts';
import { keyserverSealer } from '../at-rest.ts';
import { walletsRepo, type FactorRow, type WalletRow } from './wallets.repo.ts';

const CHALLENGE_TTL_MS = 10 * 60 * 1000;
const MAX_FAILED_ATTEMPTS = 5;
const LOCKOUT_MS = 15 * 60 * 1000;
const TOTP_PERIOD_SECONDS = 30;
const TOTP_SECRET_BYTES = 20;

export type TfaOptions = { db: Db; keyring: Keyring; clock: Clock; mailer: Mailer; totpIssuer: string };

/** What a request needs a second factor for: the candidates and the mixin that separates purposes. */
export type TfaRequirement = { mixin: string; types?: FactorRow['type'][]; factorId?: number };

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');
const secretAad = (factorId: number) => `ks-factor:${factorId}`;

/**
 * Second-factor challenges (research/tokend.md §3.4): a request that needs a factor gets 403
 * `tfa_required` with a token bound to its method, URL and body; once the token is verified with
 * the factor, the identical request passes exactly once.
 */
export function createTfa(options: TfaOptions) {
  const { db, keyring, clock } = options;
  const repo = walletsRepo(db, keyserverSealer(keyring));

  function requestToken(request: FastifyRequest, wallet: WalletRow, mixin: string): string {
    const body = sha256(request.rawBody ?? '');
    return sha256(`${mixin}:${wallet.id}:${request.method}:${request.raw.url ?? request.url}:${body}`);
  }

  function candidates(factors: FactorRow[], requirement: TfaRequirement): FactorRow[] {
    if (requirement.factorId !== undefined) return factors.filter((factor) => factor.id === requirement.factorId);
    return factors.filter(
      (factor) =>
        (requirement.types ?? ['totp']).includes(factor.type) &&
        (factor.priority > 0 || factor.type === 'password' || factor.type === 'email'),
    );
  }

  async function emailFactor(wallet: WalletRow, tx: Executor): Promise<FactorRow> {
    const existing = (await repo.factors(wallet.id, tx)).find((factor) => factor.type === 'email');
    if (existing) return existing;
    return (await repo.insertFactor({ walletPk: wallet.id, type: 'email', priority: 0 }, tx)) ?? (await emailFactor(wallet, tx));
  }

  /**
   * Passes when no factor applies or this exact request was verified; otherwise answers 403
   * tfa_required. `walletFactors` saves a query when the caller already has the wallet's factors.
   */
  async function require(
    request: FastifyRequest,
    wallet: WalletRow,
    requirement: TfaRequirement,
    walletFactors?: FactorRow[],
  ): Promise<void> {
    const factors = requirement.types?.includes('email')
      ? [await emailFactor(wallet, db)]
      : (walletFactors ?? (await repo.factors(wallet.id)));
    const [factor] = candidates(factors, requirement);
    if (!factor) return;
    const token = requestToken(request, wallet, requirement.mixin);
    const now = clock.now();
    if (await repo.consumeChallenge(token, now)) return;
    // The challenge and its mailed code are stored together or not at all.
    await db.transaction(async (tx) => {
      let codeDigest: string | null = null;
      if (factor.type === 'email') {
        const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
        codeDigest = keyedHash(keyring, 'wallet-token', `${token}:${code}`);
        await options.mailer.queue(
          {
            to: wallet.email,
            subject: 'Your confirmation code',
            text: `Your confirmation code is ${code}. It expires in 10 minutes. If you did not ask for it, ignore this message.`,
          },
          tx,
        );
      }
      await repo.upsertChallenge(
        { token, walletPk: wallet.id, factorId: factor.id, codeDigest, expiresAt: new Date(now.getTime() + CHALLENGE_TTL_MS) },
        tx,
      );
    });
    throw forbidden({
      code: 'tfa_required',
      detail: 'Additional factor required',
      meta: {
        factor_id: factor.id,
        factor_type: factor.type,
        token,
        wallet_id: wallet.walletId,
        ...(factor.type === 'password' ? { salt: factor.salt, keychain_data: factor.keychainData } : {}),
      },
    });
  }

  /** The password factor's OTP is its keypair's Ed25519 signature over the token's bytes. */
  function passwordOtpValid(factor: FactorRow, token: string, otp: string): boolean {
    return factor.accountId !== null && verifyEd25519(factor.accountId, Buffer.from(token, 'utf8'), Buffer.from(otp, 'base64'));
  }

  /** Checks an OTP for a pending challenge; failures count towards a lockout of the factor. */
  async function verifyChallenge(walletPk: string, factorId: number, token: string, otp: string): Promise<void> {
    const now = clock.now();
    const failure = await db.transaction(async (tx) => {
      const factor = await repo.lockFactor(factorId, tx);
      if (!factor || factor.walletPk !== walletPk) throw notFound('factor not found');
      if (factor.lockedUntil && factor.lockedUntil > now) {
        throw tooManyRequests(`too many failed attempts; the factor is locked until ${factor.lockedUntil.toISOString()}`);
      }
      const challenge = await repo.lockChallenge(token, tx);
      if (!challenge || challenge.factorId !== factorId || challenge.expiresAt <= now)
        throw badRequest('/data/attributes/token', 'not found');
      let valid: boolean;
      let usedStep: number | undefined;
      if (factor.type === 'password') valid = passwordOtpValid(factor, token, otp);
      else if (factor.type === 'email') {
        valid =
          challenge.codeDigest !== null && constantTimeEqual(keyedHash(keyring, 'wallet-token', `${token}:${otp}`), challenge.codeDigest);
      } else {
        const secret = unseal(
          keyring,
          { keyId: factor.secretKeyId!, wrappedKey: factor.secretWrappedKey!, ciphertext: factor.secretCiphertext! },
          secretAad(factor.id),
        );
        const result = await verifyTotp({
          secret,
          token: otp,
          epoch: Math.floor(now.getTime() / 1000),
          period: TOTP_PERIOD_SECONDS,
          epochTolerance: TOTP_PERIOD_SECONDS,
          ...(factor.lastUsedStep !== null ? { afterTimeStep: factor.lastUsedStep } : {}),
        }).catch(() => ({ valid: false as const }));
        if (result.valid && 'timeStep' in result) usedStep = result.timeStep;
        valid = result.valid;
      }
      if (!valid) {
        const failedAttempts = factor.failedAttempts + 1;
        const locked = failedAttempts >= MAX_FAILED_ATTEMPTS;
        await repo.updateFactor(
          factor.id,
          { failedAttempts: locked ? 0 : failedAttempts, lockedUntil: locked ? new Date(now.getTime() + LOCKOUT_MS) : factor.lockedUntil },
          tx,
        );
        return badRequest('/data/attributes/otp', 'invalid');
      }
      await repo.updateFactor(
        factor.id,
        { failedAttempts: 0, lockedUntil: null, ...(usedStep !== undefined ? { lastUsedStep: usedStep } : {}) },
        tx,
      );
      await repo.markChallengeVerified(token, tx);
      return undefined;
    });
    if (failure) throw failure;
  }

  /** A new, disabled TOTP factor: the secret is shown once and kept encrypted. */
  async function createTotp(wallet: WalletRow): Promise<{ factor: FactorRow; secret: string; uri: string } | undefined> {
    const secret = generateSecret({ length: TOTP_SECRET_BYTES });
    return db.transaction(async (tx) => {
      const factor = await repo.insertFactor({ walletPk: wallet.id, type: 'totp', priority: 0 }, tx);
      if (!factor) return undefined;
      const sealed = seal(keyring, secret, secretAad(factor.id));
      await repo.updateFactor(
        factor.id,
        { secretKeyId: sealed.keyId, secretWrappedKey: sealed.wrappedKey, secretCiphertext: sealed.ciphertext },
        tx,
      );
      const uri = generateURI({ issuer: options.totpIssuer, label: wallet.email, secret, period: TOTP_PERIOD_SECONDS });
      return { factor, secret, uri };
    });
  }

  return { require, verifyChallenge, createTotp };
}

export type Tfa = ReturnType<typeof createTfa>;
