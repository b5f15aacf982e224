import type { Principal } from '../../platform/auth/principal.ts';
import { keyedHash, rewrap, seal, unseal } from '../../platform/crypto/envelope.ts';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import { AppError, notFound } from '../../platform/http/errors.ts';
import type { AuditWriter } from '../../platform/audit/audit.service.ts';
import type { UsersService } from '../users/users.service.ts';
import type { PiiRepo, PiiRow } from './pii.repo.ts';
import { crossFieldErrors, type PiiRecord } from './pii.schemas.ts';

export type MaskedPii = {
  userId: string;
  firstName: string | null;
  lastName: string | null;
  address: string | null;
  city: string | null;
  state: string | null;
  zip: string | null;
  country: string | null;
  ssn: string | null;
  dobMonth: string | null;
  dobDay: string | null;
  dobYear: string | null;
  email: string | null;
  telephone: string | null;
  idType: string | null;
  idIssuer: string | null;
  idNumber: string | null;
  createdAt: Date;
  updatedAt: Date;
};

const aadFor = (userId: string) => `user_pii:${userId}`;

function mask(value: string | undefined, visible: number): string | null {
  if (value === undefined) return null;
  return `${'*'.repeat(Math.max(value.length - visible, 5))}${value.slice(-visible)}`;
}

export function piiService(deps: {
  db: Db;
  repo: PiiRepo;
  users: Pick<UsersService, 'visibleUser'>;
  keyring: Keyring;
  audit: AuditWriter;
}) {
  const { db, repo, keyring } = deps;

  /**
   * Audits a change of a user's PII in `tx`: which fields were sent (names only) and a keyed digest
   * of the record after it, never a value (`pii.created`, `pii.updated`, `pii.deleted`).
   */
  const audited = (
    tx: Executor,
    user: { id: string; orgId: string },
    action: 'created' | 'updated' | 'deleted',
    record?: PiiRecord,
    changes?: PiiRecord,
  ) =>
    deps.audit.record(tx, {
      orgId: user.orgId,
      action: `pii.${action}`,
      subject: { type: 'user', id: user.id },
      ...(record ? { after: record } : {}),
      details: changes ? { fields: Object.keys(changes).sort().join(',') } : {},
    });

  function assertValid(record: PiiRecord) {
    const errors = crossFieldErrors(record);
    if (errors.length > 0) throw new AppError('VALIDATION_ERROR', errors.map((e) => `${e.field}: ${e.message}`).join('; '), errors);
  }

  function sealRecord(userId: string, record: PiiRecord) {
    return {
      ...seal(keyring, JSON.stringify(record), aadFor(userId)),
      ssnDigest: record.ssn ? keyedHash(keyring, 'pii-index', record.ssn) : null,
    };
  }

  function open(row: PiiRow): PiiRecord {
    return JSON.parse(unseal(keyring, row, aadFor(row.userId))) as PiiRecord;
  }

  function present(row: PiiRow, record: PiiRecord = open(row)): MaskedPii {
    return {
      userId: row.userId,
      firstName: record.firstName ?? null,
      lastName: record.lastName ?? null,
      address: record.address ?? null,
      city: record.city ?? null,
      state: record.state ?? null,
      zip: record.zip ?? null,
      country: record.country ?? null,
      ssn: mask(record.ssn ?? record.ssnLast4, 4),
      dobMonth: record.dobMonth ?? null,
      dobDay: record.dobDay ?? null,
      dobYear: record.dobYear ?? null,
      email: record.email ?? null,
      telephone: record.telephone ?? null,
      idType: record.idType ?? null,
      idIssuer: record.idIssuer ?? null,
      idNumber: mask(record.idNumber, 4),
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }

  return {
    async create(principal: Principal, userId: string | undefined, record: PiiRecord): Promise<MaskedPii> {
      const targetId = userId ?? (principal.kind === 'user' ? principal.userId : undefined);
      if (!targetId)
        throw new AppError('VALIDATION_ERROR', 'userId is required with an API key', [{ field: 'userId', message: 'is required' }]);
      const user = await deps.users.visibleUser(principal, targetId);
      assertValid(record);
      const row = await db.transaction(async (tx) => {
        const inserted = await repo.insert({ userId: user.id, orgId: user.orgId, ...sealRecord(user.id, record) }, tx);
        if (!inserted) throw new AppError('CONFLICT', 'PII already exists for this user; use PATCH to change it');
        await audited(tx, user, 'created', record, record);
        return inserted;
      });
      return present(row, record);
    },

    async get(principal: Principal, userId: string): Promise<MaskedPii> {
      const user = await deps.users.visibleUser(principal, userId);
      const row = await repo.find(user.id);
      if (!row) throw notFound('PII record');
      return present(row);
    },

    async update(principal: Principal, userId: string, changes: PiiRecord): Promise<MaskedPii> {
      const user = await deps.users.visibleUser(principal, userId);
      // Locked read-merge-write: two concurrent PATCHes both land instead of one silently losing.
      return db.transaction(async (tx) => {
        const row = await repo.lock(user.id, tx);
        if (!row) throw notFound('PII record');
        const record: PiiRecord = { ...open(row), ...changes };
        if (changes.ssn !== undefined) delete record.ssnLast4;
        if (changes.ssnLast4 !== undefined) delete record.ssn;
        assertValid(record);
        const updated = await repo.update(user.id, sealRecord(user.id, record), tx);
        if (!updated) throw notFound('PII record');
        await audited(tx, user, 'updated', record, changes);
        return present(updated, record);
      });
    },

    /**
     * Legal names (`first last`) of an org's users, for the issuer's cap table (the OCF export's
     * stakeholders); users without a name on record are absent from the map.
     */
    async legalNames(orgId: string, userIds: string[]): Promise<Map<string, string>> {
      const names = new Map<string, string>();
      for (const userId of new Set(userIds)) {
        const row = await repo.find(userId);
        if (!row || row.orgId !== orgId) continue;
        const record = open(row);
        const name = [record.firstName, record.lastName].filter(Boolean).join(' ').trim();
        if (name) names.set(userId, name);
      }
      return names;
    },

    /**
     * Merges `changes` into the user's record (creating it if needed) and returns the full record.
     * Validates the merged record before writing (400 VALIDATION_ERROR). Pass the caller's `tx` so
     * the PII changes only if the caller's whole request commits.
     */
    async upsert(user: { id: string; orgId: string }, changes: PiiRecord, tx: Executor): Promise<PiiRecord> {
      const row = await repo.lock(user.id, tx);
      const record: PiiRecord = { ...(row ? open(row) : {}), ...changes };
      if (changes.ssn !== undefined) delete record.ssnLast4;
      if (changes.ssnLast4 !== undefined) delete record.ssn;
      assertValid(record);
      const sealed = sealRecord(user.id, record);
      const stored = row
        ? await repo.update(user.id, sealed, tx)
        : await repo.insert({ userId: user.id, orgId: user.orgId, ...sealed }, tx);
      if (!stored) throw new AppError('CONFLICT', 'PII changed concurrently; retry');
      await audited(tx, user, row ? 'updated' : 'created', record, changes);
      return record;
    },

    async delete(principal: Principal, userId: string): Promise<void> {
      const user = await deps.users.visibleUser(principal, userId);
      await db.transaction(async (tx) => {
        if (!(await repo.delete(user.id, tx))) throw notFound('PII record');
        await audited(tx, user, 'deleted');
      });
    },
  };
}

export type PiiService = ReturnType<typeof piiService>;

/** Re-wraps every PII data key under the active master key; the ciphertexts stay as they are. */
export async function rewrapPii(repo: PiiRepo, keyring: Keyring, tx: Executor): Promise<number> {
  let count = 0;
  for (const row of await repo.lockAll(tx)) {
    if (row.keyId === keyring.activeKeyId) continue;
    await repo.setSealed(row.userId, rewrap(keyring, row), tx);
    count++;
  }
  return count;
}
