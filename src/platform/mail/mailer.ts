import { desc, eq } from 'drizzle-orm';
import nodemailer from 'nodemailer';
import type { Db } from '../db/database.ts';
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

/** The embedded default: mail is kept in a table instead of sent, so a developer can read it. */
export function outboxMailer(db: Db): Mailer {
  return {
    async send(mail) {
      await db.insert(mailOutbox).values({ recipient: mail.to, subject: mail.subject, body: mail.text });
    },
  };
}

/** The outbox, newest first, optionally for one recipient; with the total for paging. */
export async function readOutbox(db: Db, query: { to?: string; limit: number; offset: number }) {
  const where = query.to ? eq(mailOutbox.recipient, query.to) : undefined;
  const items = await db.select().from(mailOutbox).where(where).orderBy(desc(mailOutbox.createdAt)).limit(query.limit).offset(query.offset);
  return { items, total: await db.$count(mailOutbox, where) };
}
