import { eq } from 'drizzle-orm';
import sdk from '@tokend/js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyserverSealer } from '../../src/keyserver/at-rest.ts';
import { ksWallets } from '../../src/keyserver/keyserver.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { signedHeaders, tokendClient } from '../support/tokend.ts';

const { WalletsManager, base } = sdk;
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

/** Settles every promise and counts the fulfilled ones; with none, fails naming why the first few were refused. */
async function fulfilled(promises: Promise<unknown>[]) {
  const settled = await Promise.allSettled(promises);
  const count = settled.filter((result) => result.status === 'fulfilled').length;
  if (count === 0) {
    const reasons = settled.slice(0, 3).map((result) => {
      const reason = (result as PromiseRejectedResult).reason as { message?: string; httpStatus?: number; status?: number };
      return `${reason?.httpStatus ?? reason?.status ?? '?'} ${reason?.message ?? JSON.stringify(reason)}`;
    });
    expect.fail(`none of ${settled.length} succeeded: ${reasons.join('; ')}`);
  }
  return count;
}

describe('key server limits under concurrency', () => {
  it('twenty sign-ups with one email at once: one wallet', async () => {
    const created = await fulfilled(
      Array.from({ length: COMPETITORS }, () => new WalletsManager(client.api).create('race@example.com', 'pw')),
    );
    expect(created).toBe(1);
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
      Array.from({ length: COMPETITORS }, () =>
        new WalletsManager(client.api).create(
          'race-invitee@example.com',
          'pw',
          base.Keypair.random(),
          undefined,
          [],
          undefined,
          undefined,
          undefined,
          code,
        ),
      ),
    );
    expect(created).toBe(1);
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
