import { eq } from 'drizzle-orm';
import sdk from '@tokend/js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyserverSealer } from '../../src/keyserver/at-rest.ts';
import { ksWallets } from '../../src/keyserver/keyserver.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { signedHeaders, signUpWithCode, tokendClient } from '../support/tokend.ts';

const { WalletsManager } = sdk;
type SdkWallet = InstanceType<typeof sdk.Wallet>;

let t: TestApp;
let client: Awaited<ReturnType<typeof tokendClient>>;
beforeAll(async () => {
  t = await startTestApp();
  client = await tokendClient(t);
}, 180_000);
afterAll(async () => {
  await t?.close();
});

const COMPETITORS = 20;
const walletsFor = (email: string) =>
  t.db
    .select()
    .from(ksWallets)
    .where(eq(ksWallets.emailDigest, keyserverSealer(t.keyring).digest('email', email)));
const asOwner = (wallet: SdkWallet, method: string, target: string, body?: unknown) =>
  t.request(method, target, { body, headers: { ...signedHeaders(wallet.keypair, method, target), 'account-id': wallet.accountId } });

type Refusal = { httpStatus?: number; status?: number; message?: string };
const statusOf = (reason: unknown) => (reason as Refusal)?.httpStatus ?? (reason as Refusal)?.status;

/**
 * Runs `attempt` as a client would: a 503 (the server overloaded, e.g. a pool wait past its
 * timeout while twenty requests queue on one row's lock) is tried again, up to three times.
 */
async function likeAClient<T>(attempt: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (statusOf(error) !== 503 || tries === 3) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/**
 * Settles every competitor (each `likeAClient`) and counts the fulfilled ones. Every other must
 * have been refused with 409 (the email or the code is taken): fails naming the first other
 * refusals. A competitor whose sign-up went through but whose answer was lost to an overload
 * retries into that 409, so the count may be 0 where the wallets say 1.
 */
async function fulfilled(competitors: (() => Promise<unknown>)[]) {
  const settled = await Promise.allSettled(competitors.map((competitor) => likeAClient(competitor)));
  const others = settled
    .filter((result): result is PromiseRejectedResult => result.status === 'rejected' && statusOf(result.reason) !== 409)
    .map((result) => `${statusOf(result.reason) ?? '?'} ${(result.reason as Refusal)?.message ?? JSON.stringify(result.reason)}`);
  if (others.length > 0) expect.fail(`refused other than with 409: ${others.slice(0, 3).join('; ')}`);
  return settled.filter((result) => result.status === 'fulfilled').length;
}

describe('key server limits under concurrency', () => {
  it('twenty sign-ups with one email at once: one wallet', async () => {
    const created = await fulfilled(
      Array.from({ length: COMPETITORS }, () => () => new WalletsManager(client.api).create('race@example.com', 'pw')),
    );
    expect(created).toBeLessThanOrEqual(1);
    expect(await walletsFor('race@example.com')).toHaveLength(1);
  }, 300_000);

  it("twenty sign-ups redeeming one invitation's code at once: one wallet, verified by the code", async () => {
    const inviter = await client.signUp('race-inviter@example.com', 'pw');
    const invited = await asOwner(inviter, 'POST', '/invites', {
      data: { type: 'general-invite', attributes: { email: 'race-invitee@example.com' } },
    });
    expect(invited.status, invited.text).toBe(201);
    const code = /code ([A-Z0-9]{12})/.exec((await client.latestMail('race-invitee@example.com')).body)![1]!;
    const created = await fulfilled(
      Array.from({ length: COMPETITORS }, () => () => signUpWithCode(client.api, 'race-invitee@example.com', 'pw', code)),
    );
    expect(created).toBeLessThanOrEqual(1);
    const wallets = await walletsFor('race-invitee@example.com');
    expect(wallets).toHaveLength(1);
    expect(wallets[0]!.verified).toBe(true);
  }, 300_000);
});

describe('key server documents', () => {
  it('a replacement posted with the still-valid upload policy after the first read is not what later reads serve', async () => {
    const owner = await client.signUp('doc-swap@example.com', 'pw');
    const policy = await asOwner(owner, 'POST', '/documents', {
      data: {
        type: 'kyc_id_document',
        attributes: { content_type: 'image/png' },
        relationships: { owner: { data: { id: owner.accountId } } },
      },
    });
    expect(policy.status, policy.text).toBe(200);
    const { url, ...fields } = policy.body.data.attributes as Record<string, string>;
    const post = async (content: string) => {
      const form = new FormData();
      for (const [name, value] of Object.entries(fields)) form.append(name, value);
      form.append('file', new Blob([content], { type: 'image/png' }));
      return fetch(url!.replace('http://tranche.test', t.url), { method: 'POST', body: form });
    };
    const read = async () => {
      const link = await asOwner(owner, 'GET', `/documents/${policy.body.data.id}`);
      expect(link.status, link.text).toBe(200);
      return (await fetch((link.body.data.attributes.url as string).replace('http://tranche.test', t.url))).text();
    };
    expect((await post('the real passport')).status).toBe(204);
    expect(await read()).toBe('the real passport');
    expect((await post('a forged passport')).status).toBe(204);
    expect(await read()).toBe('the real passport');
  }, 180_000);
});
