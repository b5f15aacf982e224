import { queryRows } from '../../src/platform/db/database.ts';
import { randomUUID } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import sdk from '@tokend/js-sdk';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createMailSender, readOutbox, sealMail, smtpTransport } from '../../src/platform/mail/mailer.ts';
import { mailOutbox } from '../../src/platform/platform.tables.ts';
import { startTestApp, testKeyring, type TestApp } from '../support/harness.ts';
import { smtpServer } from '../support/smtp.ts';
import { expectRejected, tokendClient } from '../support/tokend.ts';

const { WalletsManager, ApiCaller, errors } = sdk;

// Attacks on the mail queue and its sender, through a real SMTP server.
let t: TestApp;
let smtp: Awaited<ReturnType<typeof smtpServer>>;
let client: Awaited<ReturnType<typeof tokendClient>>;
beforeAll(async () => {
  smtp = await smtpServer();
  t = await startTestApp({ smtpUrl: smtp.url, mailFrom: 'Tranche <no-reply@tranche.test>' });
  client = await tokendClient(t);
}, 180_000);
afterAll(async () => {
  await t?.close();
  await smtp?.stop();
});
beforeEach(() => smtp.setRefusal(() => undefined));

const sender = () => t.modules.mailSender!;
const rowsTo = async (email: string) => (await readOutbox(t.db, t.keyring, { to: email, limit: 100, offset: 0 })).items;
const signUp = (email: string) => new WalletsManager(client.api).create(email, 'pw');
/** Drains everything due; a round that throws is swallowed as `start()` does. */
async function drain(rounds = 5) {
  for (let i = 0; i < rounds; i++)
    await sender()
      .runOnce()
      .catch(() => undefined);
}

describe('PII never reaches logs or last_error', () => {
  it('a refusal whose text quotes the address and a verification link: nothing of either in logs, last_error or console', async () => {
    const email = 'pii-victim@example.com';
    await signUp(email);
    const link = (await client.latestMail(email)).body.match(/\/verify\/([\w-]+)/)![1]!;
    smtp.setRefusal((address, command) =>
      command !== 'RCPT TO' ? undefined : { code: 451, message: `4.7.1 <${address}>: Recipient address rejected: greylisted ${address}` },
    );
    await sender().runOnce();
    smtp.setRefusal((address, command) =>
      command !== 'RCPT TO'
        ? undefined
        : { code: 550, message: `5.1.1 <${address}>: Recipient address rejected: User unknown in ${address}` },
    );
    t.clock.advance(60_000);
    await sender().runOnce();
    const [row] = await rowsTo(email);
    expect(row).toMatchObject({ status: 'failed', body: null });
    expect(row!.lastError).not.toContain('@');
    expect(row!.lastError).not.toContain('pii-victim');
    const logs = t.logs.join('');
    expect(logs).not.toContain('pii-victim');
    expect(logs).not.toContain(link);
    // Nor does the raw row carry the address or link in any clear column.
    const [raw] = await t.db.select().from(mailOutbox).where(eq(mailOutbox.id, row!.id));
    expect(JSON.stringify(raw)).not.toContain('pii-victim');
  });

  it('a 2FA / KYC-recovery code is not logged', async () => {
    const email = 'pii-code@example.com';
    await client.signUp(email, 'pw');
    await drain();
    const recoveryApi = await ApiCaller.getInstanceWithPassphrase(t.url);
    await expectRejected(new WalletsManager(recoveryApi).kycRecovery(email, 'new pw'), errors.TFARequiredError);
    const code = (await client.latestMail(email)).body.match(/code is (\d{6})/)![1]!;
    smtp.setRefusal((_a, command) =>
      command !== 'RCPT TO' ? undefined : { code: 452, message: `mailbox of ${email} full (code ${code})` },
    );
    await sender().runOnce();
    const logs = t.logs.join('');
    expect(logs).not.toContain(email);
    expect(logs).not.toMatch(new RegExp(`code[^0-9]{0,20}${code}`));
  });
});

describe('a change that rolls back sends no mail; a committed change has its mail', () => {
  async function withTrigger(table: string, run: () => Promise<void>) {
    const name = `attack_fail_${table}`;
    await t.db.execute(
      sql.raw(`create or replace function ${name}() returns trigger language plpgsql as $$
      begin raise exception 'injected failure' using errcode = '55P03'; end $$`),
    );
    await t.db.execute(sql.raw(`create trigger ${name} before insert on ${table} for each row execute function ${name}()`));
    try {
      await run();
    } finally {
      await t.db.execute(sql.raw(`drop trigger ${name} on ${table}`));
    }
  }

  it('a sign-up that fails after its mail was queued (session insert) leaves neither wallet nor mail', async () => {
    const email = 'rollback-session@example.com';
    await withTrigger('ks_sessions', async () => {
      await expect(signUp(email)).rejects.toBeDefined();
    });
    expect(await rowsTo(email)).toEqual([]);
    await drain();
    expect(smtp.to(email)).toEqual([]);
    await signUp(email);
    expect(await rowsTo(email)).toHaveLength(1);
  });

  it('a KYC-recovery challenge whose store fails sends no code; a code whose queue fails stores no challenge', async () => {
    const email = 'rollback-tfa@example.com';
    await client.signUp(email, 'pw');
    await drain();
    const before = (await rowsTo(email)).length;
    const recoveryApi = await ApiCaller.getInstanceWithPassphrase(t.url);
    await withTrigger('ks_tfa_challenges', async () => {
      await expect(new WalletsManager(recoveryApi).kycRecovery(email, 'p2')).rejects.toBeDefined();
    });
    expect(await rowsTo(email)).toHaveLength(before);
    const challengesBefore = await queryRows<{ n: number }>(t.db, sql`select count(*)::int as n from ks_tfa_challenges`);
    await withTrigger('mail_outbox', async () => {
      await expect(new WalletsManager(recoveryApi).kycRecovery(email, 'p3')).rejects.toBeDefined();
    });
    const challengesAfter = await queryRows<{ n: number }>(t.db, sql`select count(*)::int as n from ks_tfa_challenges`);
    expect(challengesAfter).toEqual(challengesBefore);
  });
});

describe('the sender is not stuck by one bad mail', () => {
  it('a pending mail that cannot be opened (sealed under a key this keyring lacks) does not block the mail queued after it', async () => {
    // e.g. a row sealed by a process still holding a master key the operator has since dropped, or a corrupt row.
    const id = randomUUID();
    await t.db.insert(mailOutbox).values({
      id,
      ...sealMail(testKeyring(), id, { to: 'poison@example.com', subject: 'x', text: 'y' }),
      status: 'pending',
      nextAttemptAt: new Date(t.clock.now().getTime() - 60_000),
    });
    await signUp('after-poison@example.com');
    const errorsSeen: unknown[] = [];
    for (let round = 0; round < 5; round++)
      await sender()
        .runOnce()
        .catch((error: unknown) => errorsSeen.push(error));
    const [poison] = await t.db.select().from(mailOutbox).where(eq(mailOutbox.id, id));
    // Diagnostics for the report.
    try {
      expect(smtp.to('after-poison@example.com'), 'good mail behind the bad one was never sent').toHaveLength(1);
      expect(poison!.status).toBe('failed');
    } finally {
      await t.db.delete(mailOutbox).where(eq(mailOutbox.id, id));
      await drain();
    }
  });

  it('GET /admin/mail still answers (200) when one row cannot be opened', async () => {
    const id = randomUUID();
    await t.db.insert(mailOutbox).values({
      id,
      ...sealMail(testKeyring(), id, { to: 'poison2@example.com', subject: 'x', text: 'y' }),
      status: 'kept',
    });
    const adminKey = (await t.modules.identity.orgs.createAdminKey()).key;
    try {
      const listed = await t.get('/admin/mail', { 'x-admin-key': adminKey });
      expect(listed.status, listed.text).toBe(200);
    } finally {
      await t.db.delete(mailOutbox).where(eq(mailOutbox.id, id));
    }
  });
});

describe('several senders, short leases, slow SMTP: each mail once', () => {
  it('3 running senders, lease 3 s, each send 0.6-1.4 s, batches outliving their lease: 12 mails delivered exactly once', async () => {
    const emails = Array.from({ length: 12 }, (_, i) => `multi-${i}@example.com`);
    for (const email of emails) await signUp(email);
    const real = smtpTransport(smtp.url);
    const slowSenders = Array.from({ length: 3 }, (_, n) =>
      createMailSender({
        db: t.db,
        keyring: t.keyring,
        clock: t.clock,
        log: t.modules.log,
        from: `s${n}@tranche.test`,
        leaseSeconds: 3,
        batchSize: 6,
        transport: {
          sendMail: async (message) => {
            await new Promise((resolve) => setTimeout(resolve, 600 + Math.random() * 800));
            return real.sendMail(message);
          },
        },
      }),
    );
    const stops = slowSenders.map((s) => s.start(20));
    try {
      await expect
        .poll(async () => (await Promise.all(emails.map(rowsTo))).every((rows) => rows[0]?.status === 'sent'), {
          timeout: 60_000,
          interval: 250,
        })
        .toBe(true);
    } finally {
      await Promise.all(stops.map((stop) => stop()));
    }
    const counts = emails.map((email) => smtp.to(email).length);
    expect(counts.every((c) => c === 1)).toBe(true);
  }, 90_000);

  it('a send slower than half the lease that does go through is not sent a second time', async () => {
    const email = 'slow-dup@example.com';
    await signUp(email);
    const real = smtpTransport(smtp.url);
    const slow = createMailSender({
      db: t.db,
      keyring: t.keyring,
      clock: t.clock,
      log: t.modules.log,
      from: 'slow@tranche.test',
      leaseSeconds: 2,
      transport: {
        sendMail: async (message) => {
          await new Promise((resolve) => setTimeout(resolve, 1_300));
          return real.sendMail(message);
        },
      },
    });
    await slow.runOnce();
    await rowsTo(email);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    t.clock.advance(31_000);
    await sender().runOnce();
    expect(smtp.to(email)).toHaveLength(1);
  }, 30_000);
});
