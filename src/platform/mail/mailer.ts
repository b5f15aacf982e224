import { randomUUID } from 'node:crypto';
import { desc, eq, isNull } from 'drizzle-orm';
import nodemailer from 'nodemailer';
import { keyedHash, seal, unseal } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { Db } from '../db/database.ts';
import { pageWithTotal, type CappedTotal } from '../db/pages.ts';
import { mailOutbox } from '../platform.tables.ts';

export type Mail = { to: string; subject: string; text: string };
export type Mailer = { send(mail: Mail): Promise<void> };

/** SMTP through nodemailer when a URL is configured (smtp://user:pass@host:587, smtps://...). */
export function smtpMailer(url: string, from: string): Mailer {
  const transport = nodemailer.createTransport(url);
  return {
    async send(mail) {
      await transport.sendMail({ from, to: mail.to, subject: mail.subject, text: mail.text });
    },
  };
}

/** A kept mail as the platform admin reads it. */
export type OutboxMail = { id: string; recipient: string; subject: string; body: string; createdAt: Date };
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
  return { id: row.id, recipient: mail.to, subject: mail.subject, body: mail.text, createdAt: row.createdAt };
}

/** The embedded default: mail is kept in a table instead of sent, so a developer can read it; sealed at rest. */
export function outboxMailer(db: Db, keyring: Keyring): Mailer {
  return {
    async send(mail) {
      const id = randomUUID();
      await db.insert(mailOutbox).values({ id, ...sealMail(keyring, id, { to: mail.to, subject: mail.subject, text: mail.text }) });
    },
  };
}

/**
 * One page of the outbox, newest first, optionally for one recipient (any case), opened; with the
 * total counted up to `TOTAL_CAP` (see `pageWithTotal`).
 */
export async function readOutbox(
  db: Db,
  keyring: Keyring,
  query: { to?: string; limit: number; offset: number },
): Promise<{ items: OutboxMail[] } & CappedTotal & { hasMore: boolean }> {
  const where = query.to ? eq(mailOutbox.recipientDigest, recipientDigest(keyring, query.to)) : undefined;
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
