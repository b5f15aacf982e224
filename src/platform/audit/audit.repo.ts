import { and, asc, desc, eq, gt, gte, lte, or, sql, type Column, type SQL } from 'drizzle-orm';
import { isNotNullViolation } from '../db/errors.ts';
import { queryRows, type Executor } from '../db/database.ts';
import { pageWithTotal, type Page } from '../db/pages.ts';
import { auditAnchors, auditChains, auditEntries } from '../platform.tables.ts';

export type AuditEntryRow = typeof auditEntries.$inferSelect;
export type AuditAnchorRow = typeof auditAnchors.$inferSelect;
export type AuditChainRow = typeof auditChains.$inferSelect;
/** An entry before it is linked into its chain: what `appendWith` takes. */
export type ChainedEntry = Omit<AuditEntryRow, 'seq' | 'prevHash' | 'hash'>;

/** Filters of the audit reads; all optional, `orgId` confines an org admin to their org. */
export type AuditFilter = {
  orgId?: string;
  subjectType?: string;
  subjectId?: string;
  actorKind?: AuditEntryRow['actorKind'];
  actorId?: string;
  action?: string;
  /** Inclusive bounds on `occurred_at`. */
  from?: Date;
  to?: Date;
};

/** 64 zeros: the `prev_hash` of a chain's first entry. */
export const GENESIS_HASH = '0'.repeat(64);

/** The only code that builds SQL over the audit tables. */
export function auditRepo(db: Executor) {
  const where = (filter: AuditFilter) =>
    and(
      filter.orgId ? eq(auditEntries.orgId, filter.orgId) : undefined,
      filter.subjectType ? eq(auditEntries.subjectType, filter.subjectType) : undefined,
      filter.subjectId ? eq(auditEntries.subjectId, filter.subjectId) : undefined,
      filter.actorKind ? eq(auditEntries.actorKind, filter.actorKind) : undefined,
      filter.actorId ? eq(auditEntries.actorId, filter.actorId) : undefined,
      filter.action ? eq(auditEntries.action, filter.action) : undefined,
      filter.from ? gte(auditEntries.occurredAt, filter.from) : undefined,
      filter.to ? lte(auditEntries.occurredAt, filter.to) : undefined,
    );
  return {
    /**
     * The chain's head, created at genesis on first use and locked until the caller's transaction
     * ends (an upsert locks the row it meets), so appends to one chain serialise.
     */
    async lockHead(chainId: string, orgId: string | null, tx: Executor): Promise<{ seq: number; headHash: string }> {
      const [row] = await tx
        .insert(auditChains)
        .values({ chainId, orgId, seq: 0, headHash: GENESIS_HASH })
        .onConflictDoUpdate({ target: auditChains.chainId, set: { chainId: sql`excluded.chain_id` } })
        .returning({ seq: auditChains.seq, headHash: auditChains.headHash });
      return { seq: Number(row!.seq), headHash: row!.headHash };
    },
    /**
     * Inserts a chain's new entries (in `seq` order, continuing its head) and moves the head to the
     * last, in one statement.
     */
    async append(entries: AuditEntryRow[], tx: Executor): Promise<void> {
      const last = entries.at(-1)!;
      const insert = tx.insert(auditEntries).values(entries);
      await tx.execute(
        sql`with inserted as (${insert.getSQL()}) update ${auditChains}
            set seq = ${last.seq}, head_hash = ${last.hash}, updated_at = ${last.occurredAt.toISOString()}::timestamptz
            where chain_id = ${last.chainId}`,
      );
    },
    /**
     * Runs `change` (the caller's data-modifying statement) and appends one entry to its chain in
     * the same statement, which is atomic by itself: the head locked (`for update`), the entry
     * linked after it with its hash computed in the database (SHA-256 over `hashParts` joined by
     * the head's hash and the entry's seq: the text `entryHash` hashes), the head moved. False when
     * the chain has no head row: the entry's seq came out null, so the statement failed on its NOT
     * NULL and nothing of it (nor of `change`) was done; create the head and run it again.
     */
    async appendWith(entry: ChainedEntry, hashParts: readonly [string, string, string], change: SQL, tx: Executor): Promise<boolean> {
      const value = <T>(data: T, column: Column) => sql.param(data, column);
      const [beforePrev, beforeSeq, afterSeq] = hashParts;
      try {
        await tx.execute(sql`
          with change as (${change}),
          head as (select seq, head_hash from ${auditChains} where chain_id = ${entry.chainId} for update),
          entry as (
            insert into ${auditEntries} (id, chain_id, seq, org_id, actor_kind, actor_id, action, subject_type, subject_id,
              related, request_id, state_digest, details, occurred_at, prev_hash, hash)
            select ${entry.id}::uuid, ${entry.chainId}::text, head.seq + 1, ${entry.orgId}::uuid, ${entry.actorKind}::text,
              ${entry.actorId}::text, ${entry.action}::text, ${entry.subjectType}::text, ${entry.subjectId}::text,
              ${value(entry.related, auditEntries.related)}::text[], ${entry.requestId}::text, ${entry.stateDigest}::text,
              ${value(entry.details, auditEntries.details)}::jsonb, ${value(entry.occurredAt, auditEntries.occurredAt)}::timestamptz,
              head.head_hash,
              encode(sha256(convert_to(${beforePrev}::text || head.head_hash || ${beforeSeq}::text || (head.seq + 1)::text
                || ${afterSeq}::text, 'UTF8')), 'hex')
            from (select 1) as one left join head on true
            returning seq, hash, occurred_at
          )
          update ${auditChains} set seq = entry.seq, head_hash = entry.hash, updated_at = entry.occurred_at
          from entry where ${auditChains}.chain_id = ${entry.chainId}`);
        return true;
      } catch (error) {
        if (isNotNullViolation(error, 'audit_entries', 'seq')) return false;
        throw error;
      }
    },
    /** A chain's head at genesis, unless it has one. */
    async createHead(chainId: string, orgId: string | null, tx: Executor): Promise<void> {
      await tx.insert(auditChains).values({ chainId, orgId, seq: 0, headHash: GENESIS_HASH }).onConflictDoNothing();
    },
    /** One page of entries, newest first, with the total counted up to `TOTAL_CAP` (see `pageWithTotal`). */
    async list(filter: AuditFilter, paging: { limit: number; offset: number }): Promise<Page<AuditEntryRow>> {
      const rows = await db
        .select()
        .from(auditEntries)
        .where(where(filter))
        .orderBy(desc(auditEntries.occurredAt), desc(auditEntries.seq))
        .limit(paging.limit + 1)
        .offset(paging.offset);
      return pageWithTotal(db, rows, paging, { from: auditEntries, where: where(filter) });
    },
    /** Entries about the subject itself or naming it as related, oldest first (at most `limit`). */
    timeline(subject: { type: string; id: string; orgId?: string }, limit: number) {
      return db
        .select()
        .from(auditEntries)
        .where(
          and(
            subject.orgId ? eq(auditEntries.orgId, subject.orgId) : undefined,
            or(
              and(eq(auditEntries.subjectType, subject.type), eq(auditEntries.subjectId, subject.id)),
              sql`${auditEntries.related} @> array[${`${subject.type}:${subject.id}`}]::text[]`,
            ),
          ),
        )
        .orderBy(asc(auditEntries.occurredAt), asc(auditEntries.seq))
        .limit(limit);
    },
    /**
     * Every chain: its head row, and also (with `headMissing`) a chain that has entries or anchors
     * but no head row, which only a deleted row explains.
     */
    async chains(
      chainId?: string,
    ): Promise<{ chainId: string; orgId: string | null; seq: number; headHash: string; headMissing?: true }[]> {
      const heads = await db
        .select()
        .from(auditChains)
        .where(chainId ? eq(auditChains.chainId, chainId) : undefined)
        .orderBy(asc(auditChains.chainId));
      const known = new Set(heads.map((head) => head.chainId));
      const seen = await queryRows<{ chain_id: string; org_id: string | null }>(
        db,
        sql`select chain_id, max(org_id::text) as org_id from (
              select chain_id, org_id from audit_entries union all select chain_id, null from audit_anchors
            ) c ${chainId ? sql`where chain_id = ${chainId}` : sql``} group by chain_id`,
      );
      const orphans = seen
        .filter((row) => !known.has(row.chain_id))
        .map((row) => ({ chainId: row.chain_id, orgId: row.org_id, seq: 0, headHash: '', headMissing: true as const }));
      return [...heads.map((head) => ({ ...head, seq: Number(head.seq) })), ...orphans].sort((a, b) => a.chainId.localeCompare(b.chainId));
    },
    /** One page of a chain in order, after `afterSeq`. */
    page: (chainId: string, afterSeq: number, limit: number) =>
      db
        .select()
        .from(auditEntries)
        .where(and(eq(auditEntries.chainId, chainId), gt(auditEntries.seq, afterSeq)))
        .orderBy(asc(auditEntries.seq))
        .limit(limit),
    async latestAnchor(chainId: string): Promise<AuditAnchorRow | undefined> {
      const [row] = await db
        .select()
        .from(auditAnchors)
        .where(eq(auditAnchors.chainId, chainId))
        .orderBy(desc(auditAnchors.seq), desc(auditAnchors.createdAt))
        .limit(1);
      return row;
    },
    async insertAnchor(anchor: typeof auditAnchors.$inferInsert): Promise<AuditAnchorRow> {
      const [row] = await db.insert(auditAnchors).values(anchor).returning();
      return row!;
    },
  };
}

export type AuditRepo = ReturnType<typeof auditRepo>;
