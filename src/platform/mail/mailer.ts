import { randomUUID } from 'node:crypto';
import { and, asc, desc, eq, inArray, isNull, lte, or, sql } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import nodemailer from 'nodemailer';
import type { Clock } from '../clock.ts';
import { keyedHash, seal, unseal } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { Db, Executor } from '../db/database.ts';
import { pageWithTotal, type CappedTotal } from '../db/pages.ts';
import { mailOutbox } from '../platform.tables.ts';

export type Mail = { to: string; subject: string; text: string };

/**
 * Where code that sends mail puts it: in the `mail_outbox` table, as part of the transaction of the
 * change the mail tells of (a sign-up and its verification link, an invite and its code). The mail
 * exists only if that transaction commits, and once it has committed it is not lost: the mail
 * sender (`createMailSender`) sends it, retrying, or, with no SMTP server, it is kept to be read.
 */
export type Mailer = { queue(mail: Mail, tx: Executor): Promise<void> };

/** SMTP reply codes from 500 to 599 on the envelope or the message: the server refuses this mail for good. */
const PERMANENT_SMTP_CODES = { min: 500, max: 599 };
/** Nodemailer's error codes for a refusal of this mail (as opposed to the connection, the login or a timeout). */
const REFUSAL_CODES = new Set(['EENVELOPE', 'EMESSAGE']);

/**
 * Seconds to wait after the 1st, 2nd, ... failed attempt before the next one: about 31 hours in all,
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
 * SMTP through nodemailer (smtp://user:pass@host:587, smtps://...), with timeouts that stay well
 * inside the sender's lease: 10 s to connect and for the greeting, 30 s of socket silence.
 */
export function smtpTransport(url: string): MailTransport & { close(): void } {
  return nodemailer.createTransport({ url, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 } as never);
}

/**
 * Why an attempt failed, fit to store and log: nodemailer's code and the SMTP reply code (e.g.
 * `EENVELOPE 550`), or the socket error code; never the message, which may quote the address.
 */
export function mailErrorSummary(error: unknown): { summary: string; permanent: boolean } {
  const { code, responseCode } = (error ?? {}) as { code?: unknown; responseCode?: unknown };
  const parts = [typeof code === 'string' ? code : undefined, typeof responseCode === 'number' ? String(responseCode) : undefined];
  const summary = parts.filter(Boolean).join(' ') || (error instanceof Error ? error.name : 'error');
  const permanent =
    typeof code === 'string' &&
    REFUSAL_CODES.has(code) &&
    typeof responseCode === 'number' &&
    responseCode >= PERMANENT_SMTP_CODES.min &&
    responseCode <= PERMANENT_SMTP_CODES.max;
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
};

export type MailSender = {
  /** Claims the due mail (up to `batchSize`), sends each, records the outcome; how many it claimed. */
  runOnce(): Promise<number>;
  /** Sends due mail every `intervalMs` (and at once again after a full batch); returns the function that stops it. */
  start(intervalMs?: number): () => Promise<void>;
};

/**
 * Sends the `pending` mail of the outbox over SMTP, at least once: a claim sets a lease, the
 * outcome is recorded only under that lease, and a sender that died mid-send leaves the mail to be
 * claimed again when its lease ends. A refusal of the mail (5xx on the envelope or the message)
 * fails it at once; anything else (connection, login, timeout, 4xx) is retried on
 * `retryScheduleSeconds`. Any number of senders may run against one database.
 */
export function createMailSender(options: MailSenderOptions): MailSender {
  const { db, keyring, clock, log, transport, from } = options;
  const schedule = options.retryScheduleSeconds ?? MAIL_RETRY_SCHEDULE_SECONDS;
  const leaseMs = (options.leaseSeconds ?? 120) * 1000;
  const batchSize = options.batchSize ?? 10;
  const retentionMs = (options.retentionSeconds ?? 30 * 86_400) * 1000;
  let prunedAt = 0;

  async function claim(now: Date): Promise<StoredMail[]> {
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
    return db
      .update(mailOutbox)
      .set({ leaseUntil: new Date(now.getTime() + leaseMs), attempts: sql`${mailOutbox.attempts} + 1` })
      .where(inArray(mailOutbox.id, due))
      .returning();
  }

  async function record(row: StoredMail, changes: Partial<StoredMail>) {
    await db
      .update(mailOutbox)
      .set({ ...changes, leaseUntil: null })
      .where(and(eq(mailOutbox.id, row.id), eq(mailOutbox.leaseUntil, row.leaseUntil!)));
  }

  async function sendOne(row: StoredMail) {
    try {
      const mail = openMail(keyring, row);
      await transport.sendMail({ from, to: mail.recipient, subject: mail.subject, text: mail.body });
      await record(row, { status: 'sent', sentAt: clock.now(), nextAttemptAt: null, lastError: null });
    } catch (error) {
      const { summary, permanent } = mailErrorSummary(error);
      const delay = schedule[row.attempts - 1];
      const failed = permanent || delay === undefined;
      log.warn(
        { mailId: row.id, attempt: row.attempts, error: summary, failed },
        failed ? 'mail not sent; giving up' : 'mail not sent; will retry',
      );
      await record(row, {
        status: failed ? 'failed' : 'pending',
        nextAttemptAt: failed ? null : new Date(clock.now().getTime() + delay * 1000),
        lastError: summary,
      });
    }
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

  async function runOnce(): Promise<number> {
    const now = clock.now();
    const rows = await claim(now);
    for (const row of rows) await sendOne(row);
    await prune(now);
    return rows.length;
  }

  function start(intervalMs = 1000) {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> | undefined;
    const tick = () => {
      running = (async () => {
        let claimed: number;
        try {
          do claimed = await runOnce();
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
  recipient: string;
  subject: string;
  body: string;
  createdAt: Date;
  /** `kept` (no SMTP server), `pending`, `sent` or `failed`; see `mailOutbox.status`. */
  status: MailStatus;
  /** SMTP attempts made. */
  attempts: number;
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
export function sealMail(keyring: Keyring, id: string, mail: Mail) {
  return { recipientDigest: recipientDigest(keyring, mail.to), ...seal(keyring, JSON.stringify(mail), mailAad(id)) };
}

function openMail(keyring: Keyring, row: StoredMail): OutboxMail {
  if (row.keyId === null || row.wrappedKey === null || row.ciphertext === null) {
    throw new Error('mail_outbox row is not sealed yet; restart the server so that it seals plaintext rows');
  }
  const mail = JSON.parse(
    unseal(keyring, { keyId: row.keyId, wrappedKey: row.wrappedKey, ciphertext: row.ciphertext }, mailAad(row.id)),
  ) as Mail;
  return {
    id: row.id,
    recipient: mail.to,
    subject: mail.subject,
    body: mail.text,
    createdAt: row.createdAt,
    status: row.status,
    attempts: row.attempts,
    sentAt: row.sentAt,
    lastError: row.lastError,
  };
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
  return { items: page.map((row) => openMail(keyring, row)), ...count };
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
