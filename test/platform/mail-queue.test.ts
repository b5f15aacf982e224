import { eq, sql } from 'drizzle-orm';
import sdk from '@tokend/js-sdk';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createMailSender, MAIL_RETRY_SCHEDULE_SECONDS, readOutbox, smtpTransport } from '../../src/platform/mail/mailer.ts';
import { mailOutbox } from '../../src/platform/platform.tables.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';
import { smtpServer } from '../support/smtp.ts';
import { tokendClient } from '../support/tokend.ts';

const { WalletsManager } = sdk;

// Mail goes out through a real SMTP server on this machine, from the outbox row written in the
// transaction of the change it tells of.
let t: TestApp;
let smtp: Awaited<ReturnType<typeof smtpServer>>;
let client: Awaited<ReturnType<typeof tokendClient>>;
let adminKey: string;
beforeAll(async () => {
  smtp = await smtpServer();
  t = await startTestApp({ smtpUrl: smtp.url, mailFrom: 'Tranche <no-reply@tranche.test>' });
  client = await tokendClient(t);
  adminKey = (await t.modules.identity.orgs.createAdminKey()).key;
}, 180_000);
afterAll(async () => {
  await t?.close();
  await smtp?.stop();
});
beforeEach(() => smtp.setRefusal(() => undefined));

const sender = () => t.modules.mailSender!;
const rowsTo = async (email: string) => (await readOutbox(t.db, t.keyring, { to: email, limit: 100, offset: 0 })).items;
const signUp = (email: string) => new WalletsManager(client.api).create(email, 'pw');

describe('mail through SMTP', () => {
  it('a sign-up queues its verification link with the wallet; the sender delivers it over SMTP and the link verifies', async () => {
    await signUp('smtp-happy@example.com');
    const [queued] = await rowsTo('smtp-happy@example.com');
    expect(queued).toMatchObject({ status: 'pending', attempts: 0, subject: 'Confirm your email' });
    expect(smtp.to('smtp-happy@example.com')).toEqual([]);

    expect(await sender().runOnce()).toBe(1);
    const [raw] = smtp.to('smtp-happy@example.com');
    expect(raw).toContain('Subject: Confirm your email');
    expect(raw).toContain('From: Tranche <no-reply@tranche.test>');
    const [sent] = await rowsTo('smtp-happy@example.com');
    // The link and codes go with the send: only recipient and subject stay.
    expect(sent).toMatchObject({ status: 'sent', attempts: 1, lastError: null, body: null });
    expect(sent!.sentAt).toBeInstanceOf(Date);
    expect(await sender().runOnce()).toBe(0);
    expect(smtp.to('smtp-happy@example.com')).toHaveLength(1);

    // The link as the SMTP server received it confirms the email.
    const payload = /\/verify\/([\w-]+)/.exec(raw!)![1]!;
    await new WalletsManager(client.api).verifyEmail(Buffer.from(payload, 'base64url').toString('base64'));
    const listed = await t.get('/admin/mail?to=smtp-happy@example.com&status=sent', { 'x-admin-key': adminKey });
    expect(listed.status).toBe(200);
    expect(listed.body.data.items).toEqual([
      expect.objectContaining({ status: 'sent', attempts: 1, last_error: null, subject: 'Confirm your email' }),
    ]);
  });

  it('the running sender sends a mail within its interval of the commit, and stops cleanly', async () => {
    const stop = sender().start(50);
    try {
      await signUp('smtp-loop@example.com');
      await expect.poll(() => smtp.to('smtp-loop@example.com').length, { timeout: 10_000 }).toBe(1);
      await expect.poll(async () => (await rowsTo('smtp-loop@example.com'))[0]!.status).toBe('sent');
    } finally {
      await stop();
    }
  });

  it('a change that is refused queues nothing: the second sign-up with a taken email sends no mail', async () => {
    await signUp('smtp-taken@example.com');
    await expect(signUp('smtp-taken@example.com')).rejects.toMatchObject({ httpStatus: 409 });
    expect(await rowsTo('smtp-taken@example.com')).toHaveLength(1);
  });

  it('a temporary refusal (451) or a server that is down is retried on the schedule; the row says why without the address', async () => {
    await signUp('smtp-later@example.com');
    smtp.setRefusal((address) => (address === 'smtp-later@example.com' ? { code: 451, message: 'try again later' } : undefined));
    await sender().runOnce();
    let [row] = await rowsTo('smtp-later@example.com');
    expect(row).toMatchObject({ status: 'pending', attempts: 1, lastError: 'EENVELOPE RCPT TO 451' });
    expect(await sender().runOnce()).toBe(0); // not due before the first delay

    // Then the server is down: a socket error, retried again.
    await smtp.stop();
    t.clock.advance(MAIL_RETRY_SCHEDULE_SECONDS[0]! * 1000);
    try {
      expect(await sender().runOnce()).toBe(1);
    } finally {
      await smtp.start();
    }
    [row] = await rowsTo('smtp-later@example.com');
    expect(row).toMatchObject({ status: 'pending', attempts: 2 });
    expect(row!.lastError).toMatch(/^E[A-Z]+ .*ECONNREFUSED$/);
    const untilNext = row!.nextAttemptAt!.getTime() - t.clock.now().getTime();
    expect(untilNext).toBeGreaterThan(MAIL_RETRY_SCHEDULE_SECONDS[1]! * 1000 - 5_000);
    expect(untilNext).toBeLessThanOrEqual(MAIL_RETRY_SCHEDULE_SECONDS[1]! * 1000);

    smtp.setRefusal(() => undefined);
    t.clock.advance(MAIL_RETRY_SCHEDULE_SECONDS[1]! * 1000);
    await sender().runOnce();
    [row] = await rowsTo('smtp-later@example.com');
    expect(row).toMatchObject({ status: 'sent', attempts: 3 });
    expect(smtp.to('smtp-later@example.com')).toHaveLength(1);
    const logged = t.logs.filter((line) => line.includes('mail not sent'));
    expect(logged.length).toBeGreaterThanOrEqual(2);
    expect(logged.join('')).not.toContain('smtp-later@example.com');
  });

  it('a permanent refusal (550) fails the mail at once; retries that run out fail it too', async () => {
    smtp.setRefusal((address) => (address.startsWith('smtp-never') ? { code: 550, message: 'no such user' } : undefined));
    await signUp('smtp-never@example.com');
    await sender().runOnce();
    expect(await rowsTo('smtp-never@example.com')).toEqual([
      expect.objectContaining({ status: 'failed', attempts: 1, lastError: 'EENVELOPE RCPT TO 550' }),
    ]);

    smtp.setRefusal((address) => (address.startsWith('smtp-busy') ? { code: 452, message: 'mailbox full' } : undefined));
    await signUp('smtp-busy@example.com');
    for (const delay of [...MAIL_RETRY_SCHEDULE_SECONDS, 0]) {
      await sender().runOnce();
      t.clock.advance(delay * 1000);
    }
    expect(await rowsTo('smtp-busy@example.com')).toEqual([
      expect.objectContaining({ status: 'failed', attempts: MAIL_RETRY_SCHEDULE_SECONDS.length + 1, lastError: 'EENVELOPE RCPT TO 452' }),
    ]);
    const failed = await t.get('/admin/mail?status=failed', { 'x-admin-key': adminKey });
    expect(failed.body.data.items.map((item: { recipient: string }) => item.recipient).sort()).toEqual([
      'smtp-busy@example.com',
      'smtp-never@example.com',
    ]);
  });

  it('a refused sender (MAIL FROM 550: the deployment, not the mail) is retried, and sends once the server takes it', async () => {
    smtp.setRefusal((_address, command) => (command === 'MAIL FROM' ? { code: 550, message: 'relay not permitted' } : undefined));
    await signUp('smtp-from@example.com');
    await sender().runOnce();
    expect(await rowsTo('smtp-from@example.com')).toEqual([
      expect.objectContaining({ status: 'pending', attempts: 1, lastError: 'EENVELOPE MAIL FROM 550' }),
    ]);
    smtp.setRefusal(() => undefined);
    t.clock.advance(MAIL_RETRY_SCHEDULE_SECONDS[0]! * 1000);
    await sender().runOnce();
    expect(await rowsTo('smtp-from@example.com')).toEqual([expect.objectContaining({ status: 'sent', attempts: 2 })]);
  });

  it('two senders at once send each mail once', async () => {
    const emails = Array.from({ length: 6 }, (_, i) => `smtp-pair-${i}@example.com`);
    for (const email of emails) await signUp(email);
    const other = createMailSender({
      db: t.db,
      keyring: t.keyring,
      clock: t.clock,
      log: t.modules.log,
      from: 'b@tranche.test',
      transport: smtpTransport(smtp.url),
      batchSize: 2,
    });
    const claimed = await Promise.all([sender().runOnce(), other.runOnce(), other.runOnce()]);
    expect(claimed.reduce((sum, n) => sum + n, 0)).toBe(6);
    for (const email of emails) {
      expect(smtp.to(email)).toHaveLength(1);
      expect(await rowsTo(email)).toEqual([expect.objectContaining({ status: 'sent', attempts: 1 })]);
    }
  });

  it('stopping mid-round finishes the mail being sent and hands the rest of the claim back untried', async () => {
    const emails = ['smtp-stop-0@example.com', 'smtp-stop-1@example.com', 'smtp-stop-2@example.com'];
    for (const email of emails) await signUp(email);
    let release!: () => void;
    const sent: string[] = [];
    const slow = createMailSender({
      db: t.db,
      keyring: t.keyring,
      clock: t.clock,
      log: t.modules.log,
      from: 'a@tranche.test',
      transport: {
        sendMail: async (message) => {
          await new Promise<void>((resolve) => (release = resolve));
          sent.push(message.to);
        },
      },
    });
    const stop = slow.start(10);
    await expect.poll(() => release !== undefined).toBe(true);
    const stopped = stop();
    release();
    await stopped;
    expect(sent).toEqual([emails[0]]);
    expect((await rowsTo(emails[0]!))[0]).toMatchObject({ status: 'sent', attempts: 1 });
    for (const email of emails.slice(1)) {
      const [row] = await t.db
        .select()
        .from(mailOutbox)
        .where(eq(mailOutbox.id, (await rowsTo(email))[0]!.id));
      expect(row).toMatchObject({ status: 'pending', attempts: 0, leaseUntil: null, claimToken: null });
    }
    // The next sender takes them at once.
    expect(await sender().runOnce()).toBe(2);
  });

  it('a sender that dies mid-send leaves the mail to another once its lease ends, and its late answer changes nothing', async () => {
    await signUp('smtp-lease@example.com');
    let release!: () => void;
    const stuck = createMailSender({
      db: t.db,
      keyring: t.keyring,
      clock: t.clock,
      log: t.modules.log,
      from: 'a@tranche.test',
      leaseSeconds: 60,
      transport: { sendMail: () => new Promise<void>((resolve) => (release = resolve)) },
    });
    const hung = stuck.runOnce();
    await expect.poll(() => release !== undefined).toBe(true);
    expect(await sender().runOnce()).toBe(0); // under the stuck sender's lease

    t.clock.advance(61_000);
    expect(await sender().runOnce()).toBe(1);
    expect(await rowsTo('smtp-lease@example.com')).toEqual([expect.objectContaining({ status: 'sent', attempts: 2 })]);
    release();
    await hung;
    expect(await rowsTo('smtp-lease@example.com')).toEqual([expect.objectContaining({ status: 'sent', attempts: 2 })]);
    expect(smtp.to('smtp-lease@example.com')).toHaveLength(1);
  });

  it('a resend refused by the per-address limit (429) keeps the previous link valid and queues nothing', async () => {
    const { wallet } = await signUp('smtp-limit@example.com');
    const limit = t.config.keyserver.mailsPerAddressPerHour;
    const statuses: number[] = [];
    for (let attempt = 0; attempt < limit + 2; attempt++) statuses.push((await t.post(`/wallets/${wallet.id}/verification`)).status);
    expect(statuses.filter((status) => status === 429)).toHaveLength(3);
    const rows = await rowsTo('smtp-limit@example.com');
    expect(rows).toHaveLength(limit);
    // The last queued link still verifies: the refused resends did not replace its token.
    await client.confirmEmail('smtp-limit@example.com');
    expect((await new WalletsManager(client.api).get('smtp-limit@example.com', 'pw')).id).toBe(wallet.id);
  });

  it('a sign-up whose mail cannot be queued stores nothing: wallet, session and mail are one transaction', async () => {
    await t.db.execute(sql`create or replace function test_fail_mail() returns trigger language plpgsql as $$
      begin raise exception 'mail queue unavailable' using errcode = '55P03'; end $$`);
    await t.db.execute(sql`create trigger test_fail_mail before insert on mail_outbox for each row execute function test_fail_mail()`);
    try {
      await expect(signUp('smtp-atomic@example.com')).rejects.toMatchObject({ httpStatus: 503 });
    } finally {
      await t.db.execute(sql`drop trigger test_fail_mail on mail_outbox`);
    }
    expect(await rowsTo('smtp-atomic@example.com')).toEqual([]);
    // No wallet was left behind: the same sign-up now goes through, with its one mail.
    await signUp('smtp-atomic@example.com');
    expect(await rowsTo('smtp-atomic@example.com')).toHaveLength(1);
  });

  it('keeps sent mail 30 days, then deletes it in the background', async () => {
    await signUp('smtp-old@example.com');
    await sender().runOnce();
    expect(await rowsTo('smtp-old@example.com')).toHaveLength(1);
    t.clock.advance(31 * 86_400_000);
    await sender().runOnce();
    expect(await rowsTo('smtp-old@example.com')).toEqual([]);
    expect(await t.db.select().from(mailOutbox).where(eq(mailOutbox.status, 'sent'))).toEqual([]);
  });
});
