import { and, asc, eq, inArray, or, sql, type SQL } from 'drizzle-orm';
import { Keypair } from '@stellar/stellar-base';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import { isUniqueViolation } from '../../platform/db/errors.ts';
import { ksIdentities, ksIdentitySettings, ksWallets } from '../keyserver.tables.ts';
import type { AccountsService } from '../accounts/accounts.service.ts';
import { aad, keyserverSealer, type LookupKind } from '../at-rest.ts';
import { conflict, forbidden, notFound } from '../jsonapi.ts';

type StoredIdentity = typeof ksIdentities.$inferSelect;
/** The contact details of an identity, sealed together; each also has a keyed-hash column for lookups. */
type Contact = { email: string | null; phoneNumber: string | null; telegramUsername: string | null; passport: string | null };
export type IdentityRow = Pick<StoredIdentity, 'id' | 'address' | 'status' | 'createdAt' | 'updatedAt'> & Contact;
export type IdentityFilter = {
  email?: string;
  address?: string;
  phone?: string;
  identifier?: string;
  telegramUsername?: string;
  passport?: string;
};

const noContact: Contact = { email: null, phoneNumber: null, telegramUsername: null, passport: null };

/** Identities: the contact details of an account, registered (with a wallet) or not yet. */
export function createIdentitiesService(options: { db: Db; accounts: AccountsService; keyring: Keyring }) {
  const { db } = options;
  const sealer = keyserverSealer(options.keyring);

  function open(row: StoredIdentity): IdentityRow {
    const contact = sealer.open<Contact>(row, aad.identity(row.address));
    return { id: row.id, address: row.address, status: row.status, createdAt: row.createdAt, updatedAt: row.updatedAt, ...contact };
  }

  /** The stored form of `contact`: its keyed hashes and the sealed document. */
  function sealContact(address: string, contact: Contact) {
    const digest = (kind: LookupKind, value: string | null) => (value === null ? null : sealer.digest(kind, value));
    return {
      emailDigest: digest('email', contact.email),
      phoneDigest: digest('phone', contact.phoneNumber),
      telegramDigest: digest('telegram', contact.telegramUsername),
      passportDigest: digest('passport', contact.passport),
      ...sealer.seal(contact, aad.identity(address)),
    };
  }

  async function byAddress(address: string, tx: Executor = db): Promise<IdentityRow> {
    const [row] = await tx.select().from(ksIdentities).where(eq(ksIdentities.address, address));
    if (!row) throw notFound('identity not found');
    return open(row);
  }

  function where(filter: IdentityFilter): SQL | undefined {
    const conditions: (SQL | undefined)[] = [
      filter.email ? eq(ksIdentities.emailDigest, sealer.digest('email', filter.email.toLowerCase())) : undefined,
      filter.address ? eq(ksIdentities.address, filter.address) : undefined,
      filter.phone ? eq(ksIdentities.phoneDigest, sealer.digest('phone', filter.phone)) : undefined,
      filter.telegramUsername ? eq(ksIdentities.telegramDigest, sealer.digest('telegram', filter.telegramUsername)) : undefined,
      filter.passport ? eq(ksIdentities.passportDigest, sealer.digest('passport', filter.passport)) : undefined,
      filter.identifier
        ? or(
            eq(ksIdentities.emailDigest, sealer.digest('email', filter.identifier.toLowerCase())),
            eq(ksIdentities.phoneDigest, sealer.digest('phone', filter.identifier)),
          )
        : undefined,
    ];
    return and(...conditions);
  }

  async function createUnregistered(input: { email?: string; phoneNumber?: string }, tx: Executor): Promise<IdentityRow> {
    const address = Keypair.random().publicKey();
    await options.accounts.createAccount(address, [], tx);
    const contact = { ...noContact, email: input.email ?? null, phoneNumber: input.phoneNumber ?? null };
    try {
      const [row] = await tx
        .insert(ksIdentities)
        .values({ address, status: 'unregistered', ...sealContact(address, contact) })
        .returning();
      return open(row!);
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict('an identity with this email or phone number already exists');
      throw error;
    }
  }

  /** Changes one contact detail: the document is re-sealed and its keyed hashes follow, under a row lock. */
  async function setContact(address: string, changes: Partial<Contact>, what: string) {
    try {
      await db.transaction(async (tx) => {
        const [row] = await tx.select().from(ksIdentities).where(eq(ksIdentities.address, address)).for('update');
        if (!row) throw notFound('identity not found');
        const { id: _id, address: _address, status: _status, createdAt: _createdAt, updatedAt: _updatedAt, ...contact } = open(row);
        await tx
          .update(ksIdentities)
          .set({ ...sealContact(address, { ...contact, ...changes }), updatedAt: new Date() })
          .where(eq(ksIdentities.address, address));
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict(`${what} already exists`);
      throw error;
    }
  }

  const openSetting = (identityId: number, row: typeof ksIdentitySettings.$inferSelect) =>
    sealer.open<unknown>(row, aad.setting(identityId, row.key));

  return {
    byAddress,
    /** The identity an admin opened for an email before anyone signed up with it. */
    async unregisteredByEmail(email: string, tx: Executor): Promise<IdentityRow | undefined> {
      const [row] = await tx
        .select()
        .from(ksIdentities)
        .where(and(eq(ksIdentities.emailDigest, sealer.digest('email', email)), eq(ksIdentities.status, 'unregistered')))
        .for('update');
      return row && open(row);
    },
    /** A wallet's account is an active identity with its email: a new one, or the unregistered one it took over. */
    async activate(address: string, email: string, tx: Executor): Promise<void> {
      try {
        await tx
          .insert(ksIdentities)
          .values({ address, status: 'active', ...sealContact(address, { ...noContact, email }) })
          .onConflictDoUpdate({ target: ksIdentities.address, set: { status: 'active', updatedAt: new Date() } });
      } catch (error) {
        if (isUniqueViolation(error)) throw conflict('email is already taken');
        throw error;
      }
    },
    async list(filter: IdentityFilter, offset: number, limit: number): Promise<IdentityRow[]> {
      const rows = await db.select().from(ksIdentities).where(where(filter)).orderBy(asc(ksIdentities.id)).offset(offset).limit(limit);
      return rows.map(open);
    },
    createUnregistered: (input: { email?: string; phoneNumber?: string }) => db.transaction((tx) => createUnregistered(input, tx)),
    massCreate: (inputs: { email?: string; phoneNumber?: string }[]) =>
      db.transaction(async (tx) => {
        const rows: IdentityRow[] = [];
        for (const input of inputs) rows.push(await createUnregistered(input, tx));
        return rows;
      }),
    async byAddresses(addresses: string[]): Promise<IdentityRow[]> {
      if (addresses.length === 0) return [];
      const rows = await db.select().from(ksIdentities).where(inArray(ksIdentities.address, addresses)).orderBy(asc(ksIdentities.id));
      return rows.map(open);
    },
    setPhone: (address: string, phoneNumber: string) => setContact(address, { phoneNumber }, 'phone number'),
    setTelegram: (address: string, telegramUsername: string) => setContact(address, { telegramUsername }, 'username'),
    setPassport: (address: string, passport: string) => setContact(address, { passport }, 'passport'),
    /** Deletes an identity that never registered a verified wallet. */
    async delete(identity: IdentityRow): Promise<void> {
      await db.transaction(async (tx) => {
        const [wallet] = await tx.select({ verified: ksWallets.verified }).from(ksWallets).where(eq(ksWallets.accountId, identity.address));
        if (wallet?.verified) throw forbidden({ detail: 'removing verified user is forbidden' });
        await tx.delete(ksIdentities).where(eq(ksIdentities.id, identity.id));
      });
    },
    async byEmail(email: string): Promise<IdentityRow> {
      const [row] = await db
        .select()
        .from(ksIdentities)
        .where(eq(ksIdentities.emailDigest, sealer.digest('email', email.toLowerCase())));
      if (!row) throw notFound('identity by email is not found');
      return open(row);
    },
    /** Settings in key order, their values opened. */
    async settings(identity: IdentityRow, offset: number, limit: number): Promise<{ key: string; value: unknown }[]> {
      const rows = await db
        .select()
        .from(ksIdentitySettings)
        .where(eq(ksIdentitySettings.identityId, identity.id))
        .orderBy(asc(ksIdentitySettings.key))
        .offset(offset)
        .limit(limit);
      return rows.map((row) => ({ key: row.key, value: openSetting(identity.id, row) }));
    },
    async setting(identity: IdentityRow, key: string): Promise<unknown> {
      const [row] = await db
        .select()
        .from(ksIdentitySettings)
        .where(and(eq(ksIdentitySettings.identityId, identity.id), eq(ksIdentitySettings.key, key)));
      return row ? openSetting(identity.id, row) : null;
    },
    async setSetting(identity: IdentityRow, key: string, value: unknown): Promise<void> {
      const sealed = sealer.seal(value, aad.setting(identity.id, key));
      await db
        .insert(ksIdentitySettings)
        .values({ identityId: identity.id, key, ...sealed })
        .onConflictDoUpdate({ target: [ksIdentitySettings.identityId, ksIdentitySettings.key], set: { ...sealed, updatedAt: sql`now()` } });
    },
  };
}

export type IdentitiesService = ReturnType<typeof createIdentitiesService>;
