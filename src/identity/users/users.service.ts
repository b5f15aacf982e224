import type { Principal } from '../../platform/auth/principal.ts';
import type { AuditWriter } from '../../platform/audit/audit.service.ts';
import type { Db } from '../../platform/db/database.ts';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import { AppError, notFound } from '../../platform/http/errors.ts';
import { emailDigest } from '../at-rest.ts';
import type { UserRow, UsersRepo } from './users.repo.ts';

/** A user as the API shows it. */
export type User = UserRow;
export type UserChanges = { onboardingCompleted?: boolean; role?: UserRow['role'] };

/**
 * A principal sees a user when it is that user, an org_admin of the user's org, or the org's API
 * key. Anyone else, and every other org, gets 404: existence is not disclosed.
 */
function canAccess(principal: Principal, user: UserRow): boolean {
  if (principal.orgId !== user.orgId) return false;
  if (principal.kind === 'api_key') return true;
  return principal.userId === user.id || principal.role === 'org_admin';
}

export function usersService(deps: { db: Db; repo: UsersRepo; keyring: Keyring; audit: AuditWriter }) {
  const { db, repo, keyring, audit } = deps;
  const subjectOf = (user: UserRow) => ({ type: 'user', id: user.id });

  async function visibleUser(principal: Principal, userId: string): Promise<UserRow> {
    const user = await repo.findInOrg(principal.orgId, userId);
    if (!user || !canAccess(principal, user)) throw notFound('user');
    return user;
  }

  return {
    visibleUser,

    async get(principal: Principal, userId: string): Promise<User> {
      return visibleUser(principal, userId);
    },

    async update(principal: Principal, userId: string, changes: UserChanges): Promise<User> {
      const user = await visibleUser(principal, userId);
      const isAdmin = principal.kind === 'api_key' || principal.role === 'org_admin';
      if (changes.role !== undefined && changes.role !== user.role && !isAdmin) {
        throw new AppError('FORBIDDEN', 'Only an org_admin can change roles');
      }
      return db.transaction(async (tx) => {
        const updated = await repo.update(user.id, changes, tx);
        if (!updated) throw notFound('user');
        await audit.record(tx, {
          orgId: user.orgId,
          action: updated.role !== user.role ? 'user.role_changed' : 'user.updated',
          subject: subjectOf(user),
          details: { role_from: user.role, role_to: updated.role, onboarding_completed: updated.onboardingCompleted },
        });
        return updated;
      });
    },

    /** Deletes the user; PII and refresh tokens go with it (foreign keys cascade). */
    async delete(principal: Principal, userId: string): Promise<void> {
      const user = await visibleUser(principal, userId);
      await db.transaction(async (tx) => {
        if (!(await repo.delete(user.id, tx))) throw notFound('user');
        await audit.record(tx, { orgId: user.orgId, action: 'user.deleted', subject: subjectOf(user), details: { role: user.role } });
      });
    },

    /**
     * Creates or refreshes the user of an ID token. The org's admin emails (kept as keyed hashes)
     * make a user org_admin only when the IdP proved the email (`emailVerified`, from
     * `email_verified: true`). A first sign-in is audited as `user.created`, a sign-in that makes
     * the user org_admin as `user.role_changed` (actor: the user).
     */
    async upsertFromIdentity(
      org: { id: string; adminEmailDigests: string[] },
      identity: { subject: string; email: string; emailVerified: boolean },
    ): Promise<UserRow> {
      const role = identity.emailVerified && org.adminEmailDigests.includes(emailDigest(keyring, identity.email)) ? 'org_admin' : 'user';
      return db.transaction(async (tx) => {
        const before = await repo.findBySubject(org.id, identity.subject, tx);
        const { inserted, ...user } = await repo.upsertBySubject(
          { orgId: org.id, externalSubject: identity.subject, email: identity.email, role },
          tx,
        );
        const actor = { kind: user.role, id: user.id } as const;
        if (inserted)
          await audit.record(tx, { orgId: org.id, action: 'user.created', subject: subjectOf(user), details: { role: user.role }, actor });
        else if (before && before.role !== user.role)
          await audit.record(tx, {
            orgId: org.id,
            action: 'user.role_changed',
            subject: subjectOf(user),
            details: { role_from: before.role, role_to: user.role, reason: 'admin_email_at_sign_in' },
            actor,
          });
        return user;
      });
    },

    findById: (id: string) => repo.findById(id),

    /** The users of an org with this email (any case), by its keyed hash: for operators and support. */
    findByEmail: (orgId: string, email: string) => repo.findByEmail(orgId, email),
  };
}

export type UsersService = ReturnType<typeof usersService>;
