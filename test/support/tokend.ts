import { createHash } from 'node:crypto';
import sdk from '@tokend/js-sdk';
import { generateSync } from 'otplib';
import { expect } from 'vitest';
import { strictSignatureHeaders } from '@tranche/client';
import { readOutbox } from '../../src/platform/mail/mailer.ts';
import type { TestApp } from './harness.ts';

const { ApiCaller, WalletsManager, FactorsManager, base, errors } = sdk;

export async function expectRejected(promise: Promise<unknown>, errorClass: new (...args: never[]) => Error) {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(errorClass);
  return error as InstanceType<typeof errors.ServerErrorBase>;
}

/**
 * The official TokenD SDK pointed at a test app, an admin key on the master account, and the steps
 * a TokenD client goes through: sign-up with the mailed link, enabling TOTP.
 */
export async function tokendClient(t: TestApp) {
  const api = await ApiCaller.getInstanceWithPassphrase(t.url);
  const admin = base.Keypair.random();
  await t.modules.keyserver.accounts.addAdminSigner(admin.accountId());

  /** The newest mail to `to`, with its text (mail that is kept or pending still has it). */
  async function latestMail(to: string) {
    const { items } = await readOutbox(t.db, t.keyring, { to, limit: 1, offset: 0 });
    const mail = items[0]!;
    if (mail.body === null) throw new Error(`the newest mail to ${to} is ${mail.status} and has no text left`);
    return { ...mail, body: mail.body };
  }

  /** The base64url payload of the verification link last mailed to `email`. */
  async function verificationPayload(email: string) {
    return (await latestMail(email)).body.match(/\/verify\/([\w-]+)/)![1]!;
  }

  /** Confirms an email as a client does: decodes the link payload and calls the SDK with it. */
  async function confirmEmail(email: string) {
    await new WalletsManager(api).verifyEmail(Buffer.from(await verificationPayload(email), 'base64url').toString('base64'));
  }

  /** Creates a wallet through the SDK and confirms its email with the link from the mail. */
  async function signUp(email: string, password: string) {
    const { wallet } = await new WalletsManager(api).create(email, password);
    await confirmEmail(email);
    return wallet;
  }

  /** Creates a TOTP factor (proving the password) and enables it (proving a code); returns its secret. */
  async function enableTotp(wallet: InstanceType<typeof sdk.Wallet>, password: string): Promise<string> {
    const caller = api.withWallet(wallet);
    const factors = new FactorsManager(caller);
    const needPassword = await expectRejected(
      caller.postWithSignature(`/wallets/${wallet.id}/factors`, { data: { type: 'totp' } }),
      errors.TFARequiredError,
    );
    const created = await factors.verifyPasswordFactorAndRetry(needPassword, password);
    const totp = created.data as { id: number; secret: string };
    const needTotp = await expectRejected(
      caller.patchWithSignature(`/wallets/${wallet.id}/factors/${totp.id}`, { data: { attributes: { priority: 1 } } }),
      errors.TFARequiredError,
    );
    await factors.verifyTotpFactorAndRetry(needTotp, totpCode(totp.secret));
    return totp.secret;
  }

  /** The code for the test clock's current 30-second step. */
  const totpCode = (secret: string) => generateSync({ secret, epoch: Math.floor(t.clock.now().getTime() / 1000) });

  return { api, admin, latestMail, verificationPayload, confirmEmail, signUp, enableTotp, totpCode };
}

/** Strict signature headers (date + digest of `body`), through our typed client's helper. */
export function strictSignedHeaders(
  keypair: InstanceType<typeof base.Keypair>,
  method: string,
  target: string,
  body: string | undefined,
  now?: Date,
): Promise<Record<string, string>> {
  return strictSignatureHeaders(
    { accountId: keypair.accountId(), sign: (data) => keypair.sign(Buffer.from(data)) as Buffer },
    { method, target, body },
    now,
  );
}

/** A TokenD SDK-style signature (`(request-target)` only) for a raw request to `target` (path and query). */
export function signedHeaders(keypair: InstanceType<typeof base.Keypair>, method: string, target: string): Record<string, string> {
  const digest = createHash('sha256').update(`(request-target): ${method.toLowerCase()} ${target}`).digest();
  const signature = (keypair.sign(digest) as Buffer).toString('base64');
  return { signature: `keyId="${keypair.accountId()}",algorithm="ed25519-sha256",headers="(request-target)",signature="${signature}"` };
}

/** A TokenD SDK sign-up (a new random keypair) redeeming an invitation's `code`, through `api` (`tokendClient(t).api`). */
export function signUpWithCode(api: ConstructorParameters<typeof sdk.WalletsManager>[0], email: string, password: string, code: string) {
  return new sdk.WalletsManager(api).create(
    email,
    password,
    sdk.base.Keypair.random(),
    undefined,
    [],
    undefined,
    undefined,
    undefined,
    code,
  );
}
