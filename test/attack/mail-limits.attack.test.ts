import { queryRows } from '../../src/platform/db/database.ts';
import { sql } from 'drizzle-orm';
import sdk from '@tokend/js-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { readOutbox } from '../../src/platform/mail/mailer.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { signedHeaders, tokendClient } from '../support/tokend.ts';

const { WalletsManager, ApiCaller } = sdk;

// Mail limits under concurrency: meaningful on PostgreSQL (TEST_DATABASE_URL), where requests run in parallel.
let t: TestApp;
let client: Awaited<ReturnType<typeof tokendClient>>;
const PER_ADDRESS = 5;
const PER_DAY = 7;
beforeAll(async () => {
  const defaults = loadConfig({});
  t = await startTestApp({
    keyserver: {
      ...defaults.keyserver,
      rateLimitPerMinute: 10_000,
      mailsPerAddressPerHour: PER_ADDRESS,
      invitesPerAccountPerDay: PER_DAY,
      invitesPerRequest: 5,
    },
  });
  client = await tokendClient(t);
}, 180_000);
afterAll(async () => {
  await t?.close();
});

const mailsTo = async (email: string) => (await readOutbox(t.db, t.keyring, { to: email, limit: 100, offset: 0 })).items;

describe('per-address mail limit under 20 concurrent requests', () => {
  it('20 resend-verification requests at once queue at most the limit, answer only 204 or 429', async () => {
    const email = 'race-resend@example.com';
    const { wallet } = await new WalletsManager(client.api).create(email, 'pw');
    const statuses = await Promise.all(
      Array.from({ length: 20 }, () => t.post(`/wallets/${wallet.id}/verification`).then((r) => r.status)),
    );
    expect(new Set(statuses).size > 0 && statuses.every((s) => s === 204 || s === 429), statuses.join(',')).toBe(true);
    expect(statuses.filter((s) => s === 204)).toHaveLength(PER_ADDRESS - 1);
    expect(await mailsTo(email)).toHaveLength(PER_ADDRESS);
    // The newest link is the one that verifies.
    await client.confirmEmail(email);
  });

  it('20 KYC-recovery requests (different bodies) at once: at most the limit of codes, one challenge per mail', async () => {
    const email = 'race-kyc@example.com';
    await client.signUp(email, 'pw');
    const before = (await mailsTo(email)).length;
    const challengesBefore = Number(
      (await queryRows<{ n: string }>(t.db, sql`select count(*) as n from ks_tfa_challenges where code_digest is not null`))[0]!.n,
    );
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const api = await ApiCaller.getInstanceWithPassphrase(t.url);
        return new WalletsManager(api).kycRecovery(email, `pw-${i}`).then(
          () => 'ok',
          (error: { httpStatus?: number; meta?: unknown }) => String(error.httpStatus ?? 'error'),
        );
      }),
    );
    expect(
      results.every((r) => r === '403' || r === '429'),
      results.join(','),
    ).toBe(true);
    const codes = (await mailsTo(email)).length - before;
    const challenges =
      Number((await queryRows<{ n: string }>(t.db, sql`select count(*) as n from ks_tfa_challenges where code_digest is not null`))[0]!.n) -
      challengesBefore;
    expect(codes).toBeLessThanOrEqual(PER_ADDRESS - before);
    expect(challenges).toBe(codes);
    expect(results.filter((r) => r === '403')).toHaveLength(codes);
  });

  it('resends and KYC recoveries for one unverified wallet at once: no deadlock or 5xx, limit holds', async () => {
    const email = 'race-mixed@example.com';
    const { wallet } = await new WalletsManager(client.api).create(email, 'pw');
    const resends = Array.from({ length: 10 }, () => t.post(`/wallets/${wallet.id}/verification`).then((r) => String(r.status)));
    const recoveries = Array.from({ length: 10 }, async (_, i) => {
      const api = await ApiCaller.getInstanceWithPassphrase(t.url);
      return new WalletsManager(api).kycRecovery(email, `mixed-${i}`).then(
        () => 'ok',
        (error: { httpStatus?: number }) => String(error.httpStatus ?? 'error'),
      );
    });
    const results = await Promise.all([...resends, ...recoveries]);
    expect(
      results.every((r) => ['204', '403', '429'].includes(r)),
      results.join(','),
    ).toBe(true);
    expect((await mailsTo(email)).length).toBeLessThanOrEqual(PER_ADDRESS);
  });
});

describe('daily invite limit under 20 concurrent requests', () => {
  const invite = (emails: string[]) => ({ data: emails.map((email) => ({ type: 'general-invite', attributes: { email } })) });
  const post = (body: unknown) => t.request('POST', '/invites', { body, headers: signedHeaders(client.admin, 'POST', '/invites') });

  it('20 one-invite requests by one account at once store and mail at most the daily limit', async () => {
    const emails = Array.from({ length: 20 }, (_, i) => `race-invite-${i}@example.com`);
    const statuses = await Promise.all(emails.map((email) => post(invite([email])).then((r) => r.status)));
    expect(
      statuses.every((s) => s === 201 || s === 429),
      statuses.join(','),
    ).toBe(true);
    const mailed = (await Promise.all(emails.map(mailsTo))).filter((rows) => rows.length > 0).length;
    const stored = Number((await queryRows<{ n: string }>(t.db, sql`select count(*) as n from ks_invites`))[0]!.n);
    expect(statuses.filter((s) => s === 201)).toHaveLength(PER_DAY);
    expect(mailed).toBe(PER_DAY);
    expect(stored).toBe(PER_DAY);
  });
});

describe('invites of two inviters over the same addresses, in opposite orders, at once', () => {
  it('answers 201 or 409, never 5xx (a deadlock on the invite index would be 5xx)', async () => {
    const defaults = loadConfig({});
    const app = await startTestApp({ keyserver: { ...defaults.keyserver, rateLimitPerMinute: 10_000, invitesPerAccountPerDay: 10_000 } });
    const client = await tokendClient(app);
    const t = app;
    try {
      const a = await client.signUp('inviter-a@example.com', 'pw');
      const b = await client.signUp('inviter-b@example.com', 'pw');
      const asOwner = (wallet: typeof a, body: unknown) =>
        t.request('POST', '/invites', {
          body,
          headers: { ...signedHeaders(wallet.keypair, 'POST', '/invites'), 'account-id': wallet.accountId },
        });
      const statuses: number[] = [];
      for (let round = 0; round < 80; round++) {
        const emails = Array.from({ length: 5 }, (_, i) => `overlap-${round}-${i}@example.com`);
        const body = (list: string[]) => ({ data: list.map((email) => ({ type: 'general-invite', attributes: { email } })) });
        const [ra, rb] = await Promise.all([asOwner(a, body(emails)), asOwner(b, body([...emails].reverse()))]);
        statuses.push(ra.status, rb.status);
      }
      expect(
        statuses.every((s) => s === 201 || s === 409),
        statuses.join(','),
      ).toBe(true);
    } finally {
      await app.close();
    }
  }, 120_000);
});
