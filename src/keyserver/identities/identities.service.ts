import { and, asc, eq, inArray, or, sql, type SQL } from 'drizzle-orm';
import { Keypair } from '@stellar/stellar-base';
import type { Db, Executor } from '../../platform/db/database.ts';
import { isUniqueViolation } from '../../platform/db/errors.ts';
import { ksIdentities, ksIdentitySettings, ksWallets } from '../keyserver.tables.ts';
import type { AccountsService } from '../accounts/accounts.service.ts';
import { conflict, forbidden, notFound } from '../jsonapi.ts';

export type IdentityRow = typeof ksIdentities.$inferSelect;
export type IdentityFilter = {
  email?: string;
  address?: string;
  phone?: string;
  identifier?: string;
  telegramUsername?: string;
  passport?: string;
};

/** Identities: the contact details of an account, registered (with a wallet) or not yet. */
export function createIdentitiesService(options: { db: Db; accounts: AccountsService }) {
  const { db } = options;

  async function byAddress(address: string, tx: Executor = db): Promise<IdentityRow> {
    const [row] = await tx.select().from(ksIdentities).where(eq(ksIdentities.address, address));
    if (!row) throw notFound('identity not found');
    return row;
  }

  function where(filter: IdentityFilter): SQL | undefined {
    const conditions: (SQL | undefined)[] = [
      filter.email ? eq(ksIdentities.email, filter.email.toLowerCase()) : undefined,
      filter.address ? eq(ksIdentities.address, filter.address) : undefined,
      filter.phone ? eq(ksIdentities.phoneNumber, filter.phone) : undefined,
      filter.telegramUsername ? eq(ksIdentities.telegramUsername, filter.telegramUsername) : undefined,
      filter.passport ? eq(ksIdentities.passport, filter.passport) : undefined,
      filter.identifier
        ? or(eq(ksIdentities.email, filter.identifier.toLowerCase()), eq(ksIdentities.phoneNumber, filter.identifier))
        : undefined,
    ];
    return and(...conditions);
  }

  async function createUnregistered(input: { email?: string; phoneNumber?: string }, tx: Executor): Promise<IdentityRow> {
    const address = Keypair.random().publicKey();
    await options.accounts.createAccount(address, [], tx);
    try {
      const [row] = await tx
        .insert(ksIdentities)
        .values({ address, email: input.email ?? null, phoneNumber: input.phoneNumber ?? null, status: 'unregistered' })
        .returning();
      return row!;
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict('an identity with this email or phone number already exists');
      throw error;
    }
  }

  async function setUnique(address: string, changes: Partial<typeof ksIdentities.$inferInsert>, what: string) {
    await byAddress(address);
    try {
      await db
        .update(ksIdentities)
        .set({ ...changes, updatedAt: new Date() })
        .where(eq(ksIdentities.address, address));
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict(`${what} already exists`);
      throw error;
    }
  }

  return {
    byAddress,
    /** The identity an admin opened for an email before anyone signed up with it. */
    async unregisteredByEmail(email: string, tx: Executor): Promise<IdentityRow | undefined> {
      const [row] = await tx
        .select()
        .from(ksIdentities)
        .where(and(eq(ksIdentities.email, email), eq(ksIdentities.status, 'unregistered')))
        .for('update');
      return row;
    },
    /** A wallet's account is an active identity with its email: a new one, or the unregistered one it took over. */
    async activate(address: string, email: string, tx: Executor): Promise<void> {
      try {
        await tx
          .insert(ksIdentities)
          .values({ address, email, status: 'active' })
          .onConflictDoUpdate({ target: ksIdentities.address, set: { status: 'active', updatedAt: new Date() } });
      } catch (error) {
        if (isUniqueViolation(error)) throw conflict('email is already taken');
        throw error;
      }
    },
    async list(filter: IdentityFilter, offset: number, limit: number): Promise<IdentityRow[]> {
      return db.select().from(ksIdentities).where(where(filter)).orderBy(asc(ksIdentities.id)).offset(offset).limit(limit);
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
      return db.select().from(ksIdentities).where(inArray(ksIdentities.address, addresses)).orderBy(asc(ksIdentities.id));
    },
    setPhone: (address: string, phoneNumber: string) => setUnique(address, { phoneNumber }, 'phone number'),
    setTelegram: (address: string, telegramUsername: string) => setUnique(address, { telegramUsername }, 'username'),
    setPassport: (address: string, passport: string) => setUnique(address, { passport }, 'passport'),
    /** Deletes an identity that never registered a verified wallet. */
    async delete(identity: IdentityRow): Promise<void> {
      await db.transaction(async (tx) => {
        const [wallet] = await tx.select({ verified: ksWallets.verified }).from(ksWallets).where(eq(ksWallets.accountId, identity.address));
        if (wallet?.verified) throw forbidden({ detail: 'removing verified user is forbidden' });
        await tx.delete(ksIdentities).where(eq(ksIdentities.id, identity.id));
      });
    },
    async byEmail(email: string): Promise<IdentityRow> {
      const [row] = await db.select().from(ksIdentities).where(eq(ksIdentities.email, email.toLowerCase()));
      if (!row) throw notFound('identity by email is not found');
      return row;
    },
    async settings(identity: IdentityRow, offset: number, limit: number) {
      return db
        .select()
        .from(ksIdentitySettings)
        .where(eq(ksIdentitySettings.identityId, identity.id))
        .orderBy(asc(ksIdentitySettings.key))
        .offset(offset)
        .limit(limit);
    },
    async setting(identity: IdentityRow, key: string): Promise<unknown> {
      const [row] = await db
        .select({ value: ksIdentitySettings.value })
        .from(ksIdentitySettings)
        .where(and(eq(ksIdentitySettings.identityId, identity.id), eq(ksIdentitySettings.key, key)));
      return row?.value ?? null;
    },
    async setSetting(identity: IdentityRow, key: string, value: unknown): Promise<void> {
      await db
        .insert(ksIdentitySettings)
        .values({ identityId: identity.id, key, value })
        .onConflictDoUpdate({ target: [ksIdentitySettings.identityId, ksIdentitySettings.key], set: { value, updatedAt: sql`now()` } });
    },
  };
}

export type IdentitiesService = ReturnType<typeof createIdentitiesService>;
