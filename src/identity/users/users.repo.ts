import { and, eq, getTableColumns, sql } from 'drizzle-orm';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import type { Executor } from '../../platform/db/database.ts';
import { emailDigest, openUserEmail, sealUserEmail, subjectDigest } from '../at-rest.ts';
import { users } from '../identity.tables.ts';

type StoredUser = typeof users.$inferSelect;

/** A user as the rest of the app sees it: the email opened, the sealed columns and hashes left behind. */
export type UserRow = Pick<StoredUser, 'id' | 'orgId' | 'role' | 'onboardingCompleted' | 'createdAt' | 'updatedAt'> & {
  email: string;
};

/** Users; the email is sealed at rest (src/identity/at-rest.ts) and opened on every read. */
export function usersRepo(db: Executor, keyring: Keyring) {
  function open(row: StoredUser): UserRow {
    return {
      id: row.id,
      orgId: row.orgId,
      email: openUserEmail(keyring, row),
      role: row.role,
      onboardingCompleted: row.onboardingCompleted,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }

  return {
    async findById(id: string, tx: Executor = db): Promise<UserRow | undefined> {
      const [row] = await tx.select().from(users).where(eq(users.id, id));
      return row && open(row);
    },
    async findInOrg(orgId: string, id: string, tx: Executor = db): Promise<UserRow | undefined> {
      const [row] = await tx
        .select()
        .from(users)
        .where(and(eq(users.orgId, orgId), eq(users.id, id)));
      return row && open(row);
    },
    /** The user of an org with this ID token subject, found by its keyed hash. */
    async findBySubject(orgId: string, subject: string, tx: Executor = db): Promise<UserRow | undefined> {
      const [row] = await tx
        .select()
        .from(users)
        .where(and(eq(users.orgId, orgId), eq(users.subjectDigest, subjectDigest(keyring, subject))));
      return row && open(row);
    },
    /** The users of an org with this email (any case), found by its keyed hash. */
    async findByEmail(orgId: string, email: string, tx: Executor = db): Promise<UserRow[]> {
      const rows = await tx
        .select()
        .from(users)
        .where(and(eq(users.orgId, orgId), eq(users.emailDigest, emailDigest(keyring, email))));
      return rows.map(open);
    },
    /**
     * Inserts the user for (org, ID token subject), found by the subject's keyed hash, or returns
     * the existing one with its email and role refreshed.
     */
    async upsertBySubject(user: { orgId: string; externalSubject: string; email: string; role: UserRow['role'] }, tx: Executor = db) {
      const digest = subjectDigest(keyring, user.externalSubject);
      const email = sealUserEmail(keyring, { orgId: user.orgId, subjectDigest: digest }, user.email);
      const [row] = await tx
        .insert(users)
        .values({ orgId: user.orgId, subjectDigest: digest, role: user.role, ...email })
        .onConflictDoUpdate({
          target: [users.orgId, users.subjectDigest],
          set: { ...email, legacyEmail: null, ...(user.role === 'org_admin' ? { role: 'org_admin' as const } : {}), updatedAt: new Date() },
        })
        .returning({ ...getTableColumns(users), inserted: sql<boolean>`(xmax = 0)` });
      const { inserted, ...stored } = row!;
      return { ...open(stored), inserted: Boolean(inserted) };
    },
    async update(id: string, changes: Partial<Pick<UserRow, 'role' | 'onboardingCompleted'>>, tx: Executor = db) {
      const [row] = await tx
        .update(users)
        .set({ ...changes, updatedAt: new Date() })
        .where(eq(users.id, id))
        .returning();
      return row && open(row);
    },
    async delete(id: string, tx: Executor = db): Promise<boolean> {
      const rows = await tx.delete(users).where(eq(users.id, id)).returning({ id: users.id });
      return rows.length > 0;
    },
  };
}

export type UsersRepo = ReturnType<typeof usersRepo>;
