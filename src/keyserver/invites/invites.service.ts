import { randomInt } from 'node:crypto';
import { and, asc, eq, inArray } from 'drizzle-orm';
import { keyedHash } from '../../platform/crypto/envelope.ts';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import type { WindowCounters } from '../../platform/http/limits.ts';
import type { Mailer } from '../../platform/mail/mailer.ts';
import { aad, keyserverSealer } from '../at-rest.ts';
import { conflict, tooManyRequests } from '../jsonapi.ts';
import { ksInvites, ksWallets } from '../keyserver.tables.ts';

type StoredInvite = typeof ksInvites.$inferSelect;
/** An invite with its email opened from the sealed document. */
export type InviteRow = Pick<StoredInvite, 'id' | 'type' | 'saleId' | 'creatorId' | 'codeDigest' | 'createdAt'> & { email: string };
export type NewInvite = { type: InviteRow['type']; email: string; saleId: string };

/** Upper-case letters and digits without the look-alikes 0/O and 1/I: 32 symbols, 5 bits each. */
const CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
const CODE_LENGTH = 12;

/**
 * Invites: an inviter's list of emails (per sale for whitelist invites), each mailed a code.
 * `perAccountPerDay`: invites (each one a mail) an inviting account may send a day, counted in
 * `counters` in the transaction that stores them.
 */
export function createInvitesService(options: {
  db: Db;
  keyring: Keyring;
  mailer: Mailer;
  counters: WindowCounters;
  perAccountPerDay: number;
}) {
  const { db, keyring } = options;
  const sealer = keyserverSealer(keyring);
  const open = (row: StoredInvite): InviteRow => ({
    id: row.id,
    type: row.type,
    saleId: row.saleId,
    creatorId: row.creatorId,
    codeDigest: row.codeDigest,
    createdAt: row.createdAt,
    email: sealer.open<string>(row, aad.invite(row.type, row.saleId, row.emailDigest ?? '')),
  });
  const newCode = () => Array.from({ length: CODE_LENGTH }, () => CODE_ALPHABET[randomInt(CODE_ALPHABET.length)]).join('');
  const codeDigest = (email: string, code: string) => keyedHash(keyring, 'invite-code', `${email}:${code.toUpperCase()}`);

  return {
    /**
     * Creates all or none and queues each invitee's mail with its code, in one transaction: 409 when
     * one exists, 429 past the inviter's daily limit (nothing stored, nothing counted).
     */
    async create(creatorId: string, invites: NewInvite[]): Promise<InviteRow[]> {
      const key = (invite: NewInvite) => `${invite.type}:${invite.saleId}:${invite.email}`;
      const codes = new Map(invites.map((invite) => [key(invite), newCode()]));
      // In one order whatever the request's, so two batches over the same addresses do not deadlock on the unique index.
      const rows = invites
        .map(({ email, type, saleId }) => {
          const emailDigest = sealer.digest('email', email);
          return {
            type,
            saleId,
            creatorId,
            codeDigest: codeDigest(email, codes.get(key({ email, type, saleId }))!),
            emailDigest,
            ...sealer.seal(email, aad.invite(type, saleId, emailDigest)),
          };
        })
        .sort((a, b) => {
          const left = `${a.emailDigest}:${a.type}:${a.saleId}`;
          const right = `${b.emailDigest}:${b.type}:${b.saleId}`;
          return left < right ? -1 : left > right ? 1 : 0;
        });
      const requested = new Map(invites.map((invite, index) => [key(invite), index]));
      return db.transaction(async (tx) => {
        const { count, retryAfterSeconds } = await options.counters.add(`invites:${creatorId}`, rows.length, 86_400_000, tx);
        if (count > options.perAccountPerDay)
          throw tooManyRequests(`This account may send ${options.perAccountPerDay} invites a day; retry in ${retryAfterSeconds} s`);
        const inserted = await tx.insert(ksInvites).values(rows).onConflictDoNothing().returning();
        if (inserted.length < rows.length) throw conflict('invite already exists');
        const created = inserted.map(open).sort((a, b) => requested.get(key(a))! - requested.get(key(b))!);
        for (const invite of created) {
          const what = invite.saleId ? `to take part in offering ${invite.saleId}` : 'to join';
          await options.mailer.queue(
            {
              to: invite.email,
              subject: 'You are invited',
              text: `You have been invited ${what}.\n\nSign up with this email address and the code ${codes.get(key(invite))} to skip email confirmation.\n`,
            },
            tx,
          );
        }
        return created;
      });
    },

    /** Invites of one inviter (all of them for an admin), with the account of an invitee who signed up. */
    async list(filter: { creatorId?: string; saleId?: string }, offset: number, limit: number) {
      const rows = await db
        .select({ invite: ksInvites, accountId: ksWallets.accountId })
        .from(ksInvites)
        .leftJoin(ksWallets, eq(ksWallets.emailDigest, ksInvites.emailDigest))
        .where(
          and(
            filter.saleId ? eq(ksInvites.saleId, filter.saleId) : undefined,
            filter.creatorId ? eq(ksInvites.creatorId, filter.creatorId) : undefined,
          ),
        )
        .orderBy(asc(ksInvites.id))
        .offset(offset)
        .limit(limit);
      return rows.map((row) => ({ invite: open(row.invite), accountId: row.accountId }));
    },

    async remove(ids: number[], creatorId: string | undefined): Promise<void> {
      await db.delete(ksInvites).where(and(inArray(ksInvites.id, ids), creatorId ? eq(ksInvites.creatorId, creatorId) : undefined));
    },

    /** Whether `code` is the code of an invite sent to `email`, which then needs no further confirmation. */
    async provesEmail(email: string, code: string, tx: Executor = db): Promise<boolean> {
      const [match] = await tx
        .select({ id: ksInvites.id })
        .from(ksInvites)
        .where(and(eq(ksInvites.emailDigest, sealer.digest('email', email)), eq(ksInvites.codeDigest, codeDigest(email, code))))
        .limit(1);
      return match !== undefined;
    },
  };
}

export type InvitesService = ReturnType<typeof createInvitesService>;
