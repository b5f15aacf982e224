import { and, eq } from 'drizzle-orm';
import type { Executor } from '../../platform/db/database.ts';
import { users } from '../identity.tables.ts';

export type UserRow = typeof users.$inferSelect;

export function usersRepo(db: Executor) {
  return {
    async findById(id: string, tx: Executor = db): Promise<UserRow | undefined> {
      const [row] = await tx.select().from(users).where(eq(users.id, id));
      return row;
    },
    async findInOrg(orgId: string, id: string, tx: Executor = db): Promise<UserRow | undefined> {
      const [row] = await tx
        .select()
        .from(users)
        .where(and(eq(users.orgId, orgId), eq(users.id, id)));
      return row;
    },
    /** Inserts the user for (org, subject), or returns the existing one with its email and role refreshed. */
    async upsertBySubject(user: { orgId: string; externalSubject: string; email: string; role: UserRow['role'] }, tx: Executor = db) {
      const [row] = await tx
        .insert(users)
        .values(user)
        .onConflictDoUpdate({
          target: [users.orgId, users.externalSubject],
          set: { email: user.email, ...(user.role === 'org_admin' ? { role: 'org_admin' as const } : {}), updatedAt: new Date() },
        })
        .returning();
      return row!;
    },
    async update(id: string, changes: Partial<Pick<UserRow, 'role' | 'onboardingCompleted'>>, tx: Executor = db) {
      const [row] = await tx
        .update(users)
        .set({ ...changes, updatedAt: new Date() })
        .where(eq(users.id, id))
        .returning();
      return row;
    },
    async delete(id: string, tx: Executor = db): Promise<boolean> {
      const rows = await tx.delete(users).where(eq(users.id, id)).returning({ id: users.id });
      return rows.length > 0;
    },
  };
}

export type UsersRepo = ReturnType<typeof usersRepo>;
