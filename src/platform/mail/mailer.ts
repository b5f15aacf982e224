import { randomUUID } from 'node:crypto';
import { and, asc, desc, eq, inArray, isNull, lte, or, sql } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import nodemailer from 'nodemailer';
import type { Clock } from '../clock.ts';
import { keyedHash, seal, unseal } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { Db, Executor } from '../db/database.ts';
import { pageWithTotal, type CappedTotal } from '../db/pages.ts';
import type { JobMetrics } from '../observability/metrics.ts';
import { mailOutbox } from '../platform.tables.ts';

export type Mail = { to: string; subject: string; text: string };

/**
 * Where code that sends mail puts it: in the `mail_outbox` table, as part of the transaction of the
 * change the mail tells of (a sign-up and its verification link, an invite and its code). The mail
 * exists only if that transaction commits, and once it has committed it is not lost: the mail
 * sender (`createMailSender`) sends it, retrying, or, with no SMTP server, it is kept to be read.
 */
export type Mailer = { queue(mail: Mail, tx: Executor): Promise<void> };

/**
 * The SMTP commands whose refusal is a refusal of this mail: the recipient (RCPT TO) or the message
 * (DATA). A refusal of MAIL FROM, the login or TLS is the deployment's (a wrong MAIL_FROM, missing
 * credentials) and is retried, so that fixing the configuration sends the mail waiting.
 */
const MAIL_REFUSING_COMMANDS = new Set(['RCPT TO', 'DATA']);

/**
 * Seconds to wait after the 1st, 2nd, ... failed attempt before the next one: about 29 hours in all,
 * then the mail is `failed`. SMTP servers themselves retry for days (RFC 5321 §4.5.4.1 suggests
 * giving up after 4-5 days); a verification link or a 2FA code is worthless long before that.
 */
export const MAIL_RETRY_SCHEDULE_SECONDS = [30, 120, 600, 3600, 4 * 3600, 12 * 3600, 12 * 3600];

/**
 * The mailer every module uses. `deliver`: true when an SMTP server is configured, so queued mail
 * is `pending` until the mail sender has sent it; false: it is `kept`, sealed, for the platform
 * admin to read (`GET /admin/mail`).
 */
export function mailQueue(keyring: Keyring, clock: Clock, deliver: boolean): Mailer {
  return {
    async queue(mail, tx) {
      const id = randomUUID();
      await tx.insert(mailOutbox).values({
        id,
        ...sealMail(keyring, id, { to: mail.to, subject: mail.subject, text: mail.text }),
        status: deliver ? 'pending' : 'kept',
        nextAttemptAt: deliver ? clock.now() : null,
      });
    },
  };
}

/** What the mail sender needs of an SMTP transport: nodemailer's `Transporter` has it. */
export type MailTransport = { sendMail(message: { from: string; to: string; subject: string; text: string }): Promise<unknown> };

/**
 * SMTP through nodemailer (smtp://user:pass@host:587, smtps://...): 10 s to connect and for the
 * greeting, 30 s of socket silence.
 */
export function smtpTransport(url: string): MailTransport & { close(): void } {
  return nodemailer.createTransport({ url, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 } as never);
}

/**
 * Why an attempt failed, fit to store and log: nodemailer's code, the SMTP command refused and
 * the reply code (e.g. `EENVELOPE RCPT TO 550`), or the socket error code; never the message,
 * which may quote the address. `permanent`: the server refused this mail for good.
 */
export function mailErrorSummary(error: unknown): { summary: string; permanent: boolean } {
  const { code, responseCode, command } = (error ?? {}) as { code?: unknown; responseCode?: unknown; command?: unknown };
  // A socket error's cause (ECONNREFUSED...) is only in nodemailer's message; the rest of the message may quote addresses.
  const cause =
    error instanceof Error
      ? /\b(E(?:CONNREFUSED|CONNRESET|HOSTUNREACH|NETUNREACH|NOTFOUND|AI_AGAIN|PIPE|TIMEDOUT))\b/.exec(error.message)?.[1]
      : undefined;
  const parts = [
    typeof code === 'string' ? code : undefined,
    typeof command === 'string' ? command : undefined,
    typeof responseCode === 'number' ? String(responseCode) : undefined,
    cause !== code ? cause : undefined,
  ];
  const summary = parts.filter(Boolean).join(' ') || (error instanceof Error ? error.name : 'error');
  // RFC 5321 §4.2.1: 5yz is a permanent negative reply; 503 (bad sequence) says the session, not the mail, was wrong.
  const permanent =
    typeof command === 'string' &&
    MAIL_REFUSING_COMMANDS.has(command) &&
    typeof responseCode === 'number' &&
    responseCode >= 500 &&
    responseCode < 600 &&
    responseCode !== 503;
  return { summary, permanent };
}

export type MailSenderOptions = {
  db: Db;
  keyring: Keyring;
  clock: Clock;
  log: FastifyBaseLogger;
  transport: MailTransport;
  /** The From of every mail (MAIL_FROM). */
  from: string;
  /** Seconds before retry N+1 after failed attempt N; past its end the mail is `failed`. */
  retryScheduleSeconds?: number[];
  /** How long a claim keeps other senders off a mail, seconds (default 120: above the transport's timeouts). */
  leaseSeconds?: number;
  /** Mails claimed per round (default 10). */
  batchSize?: number;
  /** Sent mail older than this is deleted, in batches of 500, at most once a minute (default 30 days; seconds). */
  retentionSeconds?: number;
  /** Counts each round of `start` as the job `mail_send`. */
  jobs?: JobMetrics;
};

export type MailSender = {
  /**
   * Claims the due mail (up to `batchSize`), sends each, records the outcome; how many it claimed.
   * `shouldStop`, checked before each mail, hands the rest of the claim back unsent.
   */
  runOnce(shouldStop?: () => boolean): Promise<number>;
  /**
   * Sends due mail every `intervalMs` (and at once again after a full batch); returns the function
   * that stops it: it waits for the mail being sent, if any, and hands back the rest of the claim.
   */
  start(intervalMs?: number): () => Promise<void>;
};

/**
 * Sends the `pending` mail of the outbox over SMTP, at least once. A round claims due mail under a
 * claim token; each mail's lease (`leaseSeconds`) is taken again just before it is sent, and its
 * outcome is recorded only under that token; the lease is renewed while the send runs, so a mail
 * is never sent by two live senders, and a sender that died mid-send leaves it to be claimed again
 * when its lease ends. A mail that cannot be opened (sealed under a key this process lacks) or
 * whose attempts never recorded an outcome is failed (`EUNSEALABLE`, `EATTEMPTS`). A refusal of this mail (a permanent 5xx reply to
 * RCPT TO or DATA, RFC 5321 §4.2.1) fails it at once; anything else (connection, login, MAIL FROM,
 * timeout, 4xx) is retried on `retryScheduleSeconds`. Once a mail is sent or failed its text
 * (links, codes) is dropped; recipient and subject stay, sealed. Any number of senders may run
 * against one database; their clocks (`clock`) should agree within a fraction of the lease.
 */
export function createMailSender(options: MailSenderOptions): MailSender {
  const { db, keyring, clock, log, transport, from } = options;
  const schedule = options.retryScheduleSeconds ?? MAIL_RETRY_SCHEDULE_SECONDS;
  const leaseMs = (options.leaseSeconds ?? 120) * 1000;
  const batchSize = options.batchSize ?? 10;
  const retentionMs = (options.retentionSeconds ?? 30 * 86_400) * 1000;
  let prunedAt = 0;
  const leaseFrom = (now: Date) => new Date(now.getTime() + leaseMs);

  /** Marks up to `batchSize` due mails with `token`; their ids, oldest due first. */
  async function claim(token: string, now: Date): Promise<string[]> {
    const due = db
      .select({ id: mailOutbox.id })
      .from(mailOutbox)
      .where(
        and(
          eq(mailOutbox.status, 'pending'),
          lte(mailOutbox.nextAttemptAt, now),
          or(isNull(mailOutbox.leaseUntil), lte(mailOutbox.leaseUntil, now)),
        ),
      )
      .orderBy(asc(mailOutbox.nextAttemptAt))
      .limit(batchSize)
      .for('update', { skipLocked: true });
    const rows = await db
      .update(mailOutbox)
      .set({ claimToken: token, leaseUntil: leaseFrom(now) })
      .where(inArray(mailOutbox.id, due))
      .returning({ id: mailOutbox.id, nextAttemptAt: mailOutbox.nextAttemptAt });
    return rows.sort((a, b) => a.nextAttemptAt!.getTime() - b.nextAttemptAt!.getTime()).map((row) => row.id);
  }

  /** Renews the lease of one claimed mail and counts the attempt; undefined when the claim was lost. */
  async function take(id: string, token: string): Promise<StoredMail | undefined> {
    const [row] = await db
      .update(mailOutbox)
      .set({ leaseUntil: leaseFrom(clock.now()), attempts: sql`${mailOutbox.attempts} + 1` })
      .where(and(eq(mailOutbox.id, id), eq(mailOutbox.claimToken, token), eq(mailOutbox.status, 'pending')))
      .returning();
    return row;
  }

  async function record(row: StoredMail, changes: Partial<StoredMail>) {
    await db
      .update(mailOutbox)
      .set({ ...changes, leaseUntil: null, claimToken: null })
      .where(and(eq(mailOutbox.id, row.id), eq(mailOutbox.claimToken, row.claimToken!)));
  }

  /** Hands back the mail of a claim not yet taken, for the next round or another sender. */
  async function release(token: string) {
    await db
      .update(mailOutbox)
      .set({ leaseUntil: null, claimToken: null })
      .where(and(eq(mailOutbox.claimToken, token), eq(mailOutbox.status, 'pending')));
  }

  /**
   * Sends `mail`, renewing its lease every third of `leaseSeconds` while the send runs, so no other
   * sender takes it over from a live one however slow the SMTP server is (the transport's own
   * timeouts end a stalled send).
   */
  async function sendHeld(row: StoredMail, mail: OpenedMail) {
    const heartbeat = setInterval(() => {
      void db
        .update(mailOutbox)
        .set({ leaseUntil: leaseFrom(clock.now()) })
        .where(and(eq(mailOutbox.id, row.id), eq(mailOutbox.claimToken, row.claimToken!)))
        .catch(() => undefined);
    }, leaseMs / 3).unref();
    try {
      await transport.sendMail({ from, to: mail.recipient, subject: mail.subject, text: mail.body ?? '' });
    } finally {
      clearInterval(heartbeat);
    }
  }

  async function giveUp(row: StoredMail, lastError: string) {
    log.warn({ mailId: row.id, attempt: row.attempts, error: lastError, failed: true }, 'mail not sent; giving up');
    await record(row, { status: 'failed', nextAttemptAt: null, lastError });
  }

  async function sendOne(row: StoredMail) {
    // More attempts than the schedule has room for: earlier ones never recorded an outcome (a
    // process that died mid-send each time). Stop rather than loop.
    if (row.attempts > schedule.length + 1) return giveUp(row, 'EATTEMPTS');
    let mail: OpenedMail;
    try {
      mail = openMail(keyring, row);
    } catch {
      // Sealed under a key this process does not have: no attempt can send it.
      return giveUp(row, 'EUNSEALABLE');
    }
    let failure: unknown;
    try {
      await sendHeld(row, mail);
    } catch (error) {
      failure = error ?? new Error('send failed');
    }
    // Only the address and subject outlive the attempt that settles the mail.
    const scrubbed = sealMail(keyring, row.id, { to: mail.recipient, subject: mail.subject });
    if (failure === undefined) {
      await record(row, { status: 'sent', sentAt: clock.now(), nextAttemptAt: null, lastError: null, ...scrubbed });
      return;
    }
    const { summary, permanent } = mailErrorSummary(failure);
    const wait = schedule[row.attempts - 1];
    const failed = permanent || wait === undefined;
    log.warn(
      { mailId: row.id, attempt: row.attempts, error: summary, failed },
      failed ? 'mail not sent; giving up' : 'mail not sent; will retry',
    );
    await record(row, {
      status: failed ? 'failed' : 'pending',
      nextAttemptAt: failed ? null : new Date(clock.now().getTime() + wait * 1000),
      lastError: summary,
      ...(failed ? scrubbed : {}),
    });
  }

  async function prune(now: Date) {
    if (now.getTime() - prunedAt < 60_000) return;
    prunedAt = now.getTime();
    const old = db
      .select({ id: mailOutbox.id })
      .from(mailOutbox)
      .where(and(eq(mailOutbox.status, 'sent'), lte(mailOutbox.sentAt, new Date(now.getTime() - retentionMs))))
      .limit(500);
    await db.delete(mailOutbox).where(inArray(mailOutbox.id, old));
  }

  async function runOnce(shouldStop: () => boolean = () => false): Promise<number> {
    const token = randomUUID();
    const ids = await claim(token, clock.now());
    try {
      for (const id of ids) {
        if (shouldStop()) break;
        const row = await take(id, token);
        // One mail's trouble (a database error recording it) does not hold up the others; its lease lapses and it is retried.
        if (row) await sendOne(row).catch((error: unknown) => log.warn({ err: error, mailId: id }, 'mail sender failed on one mail'));
      }
    } finally {
      if (ids.length > 0) await release(token);
    }
    await prune(clock.now());
    return ids.length;
  }

  function start(intervalMs = 1000) {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> | undefined;
    const tick = () => {
      running = (async () => {
        let claimed: number;
        try {
          const round = () => runOnce(() => stopped);
          do claimed = await (options.jobs ? options.jobs.track('mail_send', round) : round());
          while (!stopped && claimed === batchSize);
        } catch (error) {
          log.warn({ err: error }, 'mail sender round failed; retrying at the next tick');
        }
      })().finally(() => {
        running = undefined;
        if (!stopped) timer = setTimeout(tick, intervalMs).unref();
      });
    };
    timer = setTimeout(tick, 0).unref();
    return async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    };
  }

  return { runOnce, start };
}

/** A kept mail as the platform admin reads it. */
export type OutboxMail = {
  id: string;
  /** Null, with `subject` and `body`, when the mail was sealed under a key this process does not have. */
  recipient: string | null;
  subject: string | null;
  /** The text; null once the mail was sent or failed (it held links and codes). */
  body: string | null;
  createdAt: Date;
  /** `kept` (no SMTP server), `pending`, `sent` or `failed`; see `mailOutbox.status`. */
  status: MailStatus;
  /** SMTP attempts made. */
  attempts: number;
  /** When a pending mail is tried next (null unless pending). */
  nextAttemptAt: Date | null;
  sentAt: Date | null;
  /** Why the last attempt failed (`EENVELOPE 550`, `ECONNECTION`), never an address. */
  lastError: string | null;
};
export type MailStatus = StoredMail['status'];
export const MAIL_STATUSES = ['kept', 'pending', 'sent', 'failed'] as const satisfies readonly MailStatus[];
type StoredMail = typeof mailOutbox.$inferSelect;

const mailAad = (id: string) => `mail_outbox:${id}`;
/** The outbox is found by recipient through this keyed hash of the lower-cased address. */
const recipientDigest = (keyring: Keyring, to: string) => keyedHash(keyring, 'mail-recipient', to.toLowerCase());

/** The stored form of a mail: sealed (it carries addresses, links and codes), found by the keyed hash of its recipient. */
export function sealMail(keyring: Keyring, id: string, mail: Omit<Mail, 'text'> & { text?: string }) {
  return { recipientDigest: recipientDigest(keyring, mail.to), ...seal(keyring, JSON.stringify(mail), mailAad(id)) };
}

/** A mail whose sealed part is open. */
type OpenedMail = OutboxMail & { recipient: string; subject: string };

function openMail(keyring: Keyring, row: StoredMail): OpenedMail {
  if (row.keyId === null || row.wrappedKey === null || row.ciphertext === null) {
    throw new Error('mail_outbox row is not sealed yet; restart the server so that it seals plaintext rows');
  }
  const mail = JSON.parse(
    unseal(keyring, { keyId: row.keyId, wrappedKey: row.wrappedKey, ciphertext: row.ciphertext }, mailAad(row.id)),
  ) as Omit<Mail, 'text'> & { text?: string };
  return {
    id: row.id,
    recipient: mail.to,
    subject: mail.subject,
    body: mail.text ?? null,
    createdAt: row.createdAt,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.status === 'pending' ? row.nextAttemptAt : null,
    sentAt: row.sentAt,
    lastError: row.lastError,
  };
}

/** `openMail`, or the row's metadata alone when its sealed part cannot be opened: one such row does not hide the page. */
function openReadable(keyring: Keyring, row: StoredMail): OutboxMail {
  try {
    return openMail(keyring, row);
  } catch {
    return {
      id: row.id,
      recipient: null,
      subject: null,
      body: null,
      createdAt: row.createdAt,
      status: row.status,
      attempts: row.attempts,
      nextAttemptAt: row.status === 'pending' ? row.nextAttemptAt : null,
      sentAt: row.sentAt,
      lastError: row.lastError,
    };
  }
}

/**
 * One page of the outbox, newest first, optionally for one recipient (any case) and in one status,
 * opened; with the total counted up to `TOTAL_CAP` (see `pageWithTotal`).
 */
export async function readOutbox(
  db: Db,
  keyring: Keyring,
  query: { to?: string; status?: MailStatus; limit: number; offset: number },
): Promise<{ items: OutboxMail[] } & CappedTotal & { hasMore: boolean }> {
  const where = and(
    query.to ? eq(mailOutbox.recipientDigest, recipientDigest(keyring, query.to)) : undefined,
    query.status ? eq(mailOutbox.status, query.status) : undefined,
  );
  const rows = await db
    .select()
    .from(mailOutbox)
    .where(where)
    .orderBy(desc(mailOutbox.createdAt), desc(mailOutbox.id))
    .limit(query.limit + 1)
    .offset(query.offset);
  const { rows: page, ...count } = await pageWithTotal(db, rows, query, { from: mailOutbox, where });
  return { items: page.map((row) => openReadable(keyring, row)), ...count };
}

/**
 * Seals mail kept before the outbox was sealed at rest (migration 0013 could only add columns) and
 * nulls its plaintext. Every start runs it after the migrations; returns how many it sealed.
 */
export async function sealPlaintextOutbox(db: Db, keyring: Keyring): Promise<number> {
  return db.transaction(async (tx) => {
    const rows = await tx.select().from(mailOutbox).where(isNull(mailOutbox.keyId)).for('update');
    for (const row of rows) {
      const mail = { to: row.legacyRecipient ?? '', subject: row.legacySubject ?? '', text: row.legacyBody ?? '' };
      await tx
        .update(mailOutbox)
        .set({ ...sealMail(keyring, row.id, mail), legacyRecipient: null, legacySubject: null, legacyBody: null })
        .where(eq(mailOutbox.id, row.id));
    }
    return rows.length;
  });
}
