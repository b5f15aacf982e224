import sdk from '@tokend/js-sdk';
import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { keyserverSealer } from '../../src/keyserver/at-rest.ts';
import { ksSessions } from '../../src/keyserver/keyserver.tables.ts';
import { auditChains, auditEntries } from '../../src/platform/platform.tables.ts';
import { startTestApp, type ApiResponse, type TestApp } from '../support/harness.ts';
import { statementsDuring } from '../support/round-trips.ts';
import { expectRejected, tokendClient } from '../support/tokend.ts';

const { WalletsManager, FactorsManager, errors } = sdk;

const config = (rateLimitPerMinute = loadConfig({}).keyserver.rateLimitPerMinute) => ({
  keyserver: { ...loadConfig({}).keyserver, emailVerification: false, rateLimitPerMinute },
});

let t: TestApp;
const clients = new Map<TestApp, Awaited<ReturnType<typeof tokendClient>>>();
const clientOf = async (app: TestApp) => clients.get(app) ?? clients.set(app, await tokendClient(app)).get(app)!;

beforeAll(async () => {
  t = await startTestApp(config());
});
afterAll(async () => {
  await t?.close();
});

/** A new wallet (verified: no email verification here), its wallet id (the login credential) and its row id (what sessions and audit entries name). */
async function verifiedWallet(app: TestApp, email: string, password = 'pw') {
  const { wallet } = await new WalletsManager((await clientOf(app)).api).create(email, password);
  const row = await app.modules.keyserver.wallets.mustFind(wallet.id);
  return { wallet, walletId: wallet.id, pk: row.id };
}

const sessionsOf = async (app: TestApp, pk: string) => app.db.$count(ksSessions, eq(ksSessions.walletPk, pk));
const entriesOf = (app: TestApp, pk: string) =>
  app.db
    .select()
    .from(auditEntries)
    .where(and(eq(auditEntries.action, 'keyserver.session.created'), eq(auditEntries.subjectId, pk)))
    .orderBy(auditEntries.seq);

describe('login happy', () => {
  it('is two round trips: the counter hit with the wallet and its factors, then the session with its audit entry', async () => {
    const { walletId, pk } = await verifiedWallet(t, 'two-trips@example.com');
    // The first login also starts the limiter's background sweep, which is not the login's.
    expect((await t.get(`/wallets/${walletId}`)).status).toBe(200);
    let login: ApiResponse | undefined;
    const sent = await statementsDuring(t.database, async () => (login = await t.get(`/wallets/${walletId}`)));
    expect(login!.status, login!.text).toBe(200);
    expect(sent, sent.join('\n\n')).toHaveLength(2);
    expect(sent[0]).toMatch(/rate_limit_counters[\s\S]*ks_wallets[\s\S]*ks_factors/);
    expect(sent[1]).toMatch(/ks_sessions[\s\S]*audit_chains[\s\S]*audit_entries/);
    expect(sent.some((statement) => /^\s*(begin|commit)\b/i.test(statement))).toBe(false);
    expect(login!.headers.get('x-ratelimit-remaining')).toMatch(/^\d+$/);

    // The session: stored under the keyed hash of its id, its key sealed, and it opens again.
    const session = login!.body.included[0] as { id: string; attributes: { encryption_key: string } };
    const [stored] = await t.db
      .select()
      .from(ksSessions)
      .where(eq(ksSessions.id, keyserverSealer(t.keyring).sessionDigest(session.id)));
    expect(stored).toMatchObject({ walletPk: pk });
    expect(JSON.stringify(stored)).not.toContain(session.attributes.encryption_key);
    expect((await t.get(`/sessions/${session.id}`)).body.data.attributes.encryption_key).toBe(session.attributes.encryption_key);

    // Its audit entry: on the wallet's key-server chain, with the request's id, and the chain verifies.
    const entries = await entriesOf(t, pk);
    expect(entries).toHaveLength(3);
    expect(entries.at(-1)).toMatchObject({
      chainId: `keyserver:${pk[0]}`,
      actorKind: 'user',
      actorId: `wallet:${pk}`,
      requestId: login!.headers.get('x-request-id'),
    });
    const reports = await t.modules.audit.verify();
    expect(reports.find((report) => report.chainId === `keyserver:${pk[0]}`)).toMatchObject({ ok: true });
  });

  it('concurrent logins on one chain each append their entry in turn, and the chain verifies', async () => {
    const { walletId, pk } = await verifiedWallet(t, 'concurrent@example.com');
    const chainId = `keyserver:${pk[0]}`;
    const [before] = await t.db.select().from(auditChains).where(eq(auditChains.chainId, chainId));
    const logins = await Promise.all(Array.from({ length: 12 }, () => t.get(`/wallets/${walletId}`)));
    expect(logins.map((login) => login.status)).toEqual(Array(12).fill(200));
    expect(await sessionsOf(t, pk)).toBe(13);
    const [after] = await t.db.select().from(auditChains).where(eq(auditChains.chainId, chainId));
    expect(after!.seq).toBe(before!.seq + 12);
    const seqs = (await t.db.select({ seq: auditEntries.seq }).from(auditEntries).where(eq(auditEntries.chainId, chainId))).map(
      (row) => row.seq,
    );
    expect(seqs.sort((a, b) => a - b)).toEqual(Array.from({ length: after!.seq }, (_, index) => index + 1));
    expect((await t.modules.audit.verify()).find((report) => report.chainId === chainId)).toMatchObject({ ok: true, entries: after!.seq });
  });
});

describe('login error', () => {
  it('past the per-address limit answers 429 from the first round trip, opening no session and recording nothing', async () => {
    const limited = await startTestApp(config(3));
    try {
      const { walletId, pk } = await verifiedWallet(limited, 'limited@example.com');
      for (let attempt = 0; attempt < 3; attempt++) expect((await limited.get(`/wallets/${walletId}`)).status).toBe(200);
      let refused: ApiResponse | undefined;
      const sent = await statementsDuring(limited.database, async () => (refused = await limited.get(`/wallets/${walletId}`)));
      expect(refused!.status).toBe(429);
      expect(refused!.body.errors[0]).toMatchObject({ status: '429' });
      expect(refused!.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(refused!.headers.get('x-ratelimit-remaining')).toBe('0');
      expect(sent, sent.join('\n\n')).toHaveLength(1);
      expect(await sessionsOf(limited, pk)).toBe(4);
      expect(await entriesOf(limited, pk)).toHaveLength(4);
      // Unknown wallets count too, and past the limit say nothing of whether the wallet exists.
      expect((await limited.get(`/wallets/${'ef'.repeat(32)}`)).status).toBe(429);
    } finally {
      await limited.close();
    }
  });

  it('the limit is one for every process on the database', async () => {
    const first = await startTestApp(config(3));
    const second = await startTestApp(config(3), { reuse: { database: first.database, keyring: first.keyring } });
    try {
      const { walletId } = await verifiedWallet(first, 'shared-limit@example.com');
      expect((await first.get(`/wallets/${walletId}`)).status).toBe(200);
      expect((await second.get(`/wallets/${walletId}`)).status).toBe(200);
      expect((await first.get(`/wallets/${walletId}`)).status).toBe(200);
      expect((await second.get(`/wallets/${walletId}`)).status).toBe(429);
    } finally {
      await second.close();
      await first.close();
    }
  });

  it('an enabled TOTP factor: 403 tfa_required and no session nor entry until the code is verified', async () => {
    const { wallet, walletId, pk } = await verifiedWallet(t, 'totp-login@example.com', 'hunter22');
    const client = await clientOf(t);
    const secret = await client.enableTotp(await new WalletsManager(client.api).get('totp-login@example.com', 'hunter22'), 'hunter22');
    const sessions = await sessionsOf(t, pk);
    const entries = (await entriesOf(t, pk)).length;

    const refused = await t.get(`/wallets/${walletId}`);
    expect(refused.status).toBe(403);
    expect(refused.body.errors[0]).toMatchObject({ code: 'tfa_required' });
    const login = await expectRejected(new WalletsManager(client.api).get('totp-login@example.com', 'hunter22'), errors.TFARequiredError);
    expect(await sessionsOf(t, pk)).toBe(sessions);
    expect(await entriesOf(t, pk)).toHaveLength(entries);

    t.clock.advance(30_000);
    const factors = new FactorsManager(client.api.withWallet(wallet));
    const retried = await factors.verifyTotpFactorAndRetry(login, client.totpCode(secret));
    expect((retried.data as { accountId: string }).accountId).toBe(wallet.accountId);
    expect(await sessionsOf(t, pk)).toBe(sessions + 1);
    expect(await entriesOf(t, pk)).toHaveLength(entries + 1);
    expect((await t.modules.audit.verify()).every((report) => report.ok)).toBe(true);
  });
});

describe('login security', () => {
  it('a failed session insert leaves no audit entry and the chain unmoved (one statement: all or nothing)', async () => {
    const { walletId, pk } = await verifiedWallet(t, 'atomic@example.com');
    const chainId = `keyserver:${pk[0]}`;
    const [before] = await t.db.select().from(auditChains).where(eq(auditChains.chainId, chainId));
    const entries = (await entriesOf(t, pk)).length;
    // A trigger makes the next session insert fail, inside the statement that also appends the entry.
    await t.db.execute(
      sql.raw(`create function refuse_session() returns trigger language plpgsql as $$ begin raise exception 'refused'; end $$`),
    );
    await t.db.execute(
      sql.raw('create trigger refuse_session before insert on ks_sessions for each row execute function refuse_session()'),
    );
    try {
      expect((await t.get(`/wallets/${walletId}`)).status).toBe(500);
    } finally {
      await t.db.execute(sql.raw('drop trigger refuse_session on ks_sessions'));
      await t.db.execute(sql.raw('drop function refuse_session()'));
    }
    const [after] = await t.db.select().from(auditChains).where(eq(auditChains.chainId, chainId));
    expect(after).toMatchObject({ seq: before!.seq, headHash: before!.headHash });
    expect(await entriesOf(t, pk)).toHaveLength(entries);
    expect((await t.get(`/wallets/${walletId}`)).status).toBe(200);
    expect((await t.modules.audit.verify()).find((report) => report.chainId === chainId)).toMatchObject({ ok: true });
  });
});
