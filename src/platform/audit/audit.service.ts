import { createHash, randomUUID } from 'node:crypto';
import type { SQLWrapper } from 'drizzle-orm';
import { PgTransaction } from 'drizzle-orm/pg-core';
import { stringify } from 'safe-stable-stringify';
import type { Keyring } from '../crypto/keyring.ts';
import { keyedHash } from '../crypto/envelope.ts';
import { beforeCommit, type Executor } from '../db/database.ts';
import { auditContext, SYSTEM_ACTOR, type Actor } from './context.ts';
import { auditRepo, GENESIS_HASH, type AuditEntryRow, type AuditFilter, type AuditRepo, type ChainedEntry } from './audit.repo.ts';

/** A record the audit log keeps about something; `type` in the field's terms (`subscription`, `share`, `api_key`, ...). */
export type AuditSubject = { type: string; id: string };

/**
 * One consequential change. `before`/`after`: the record's state around it, which may hold PII:
 * only a keyed hash of them is stored (`state_digest`, HMAC-SHA256 under the `audit-state`
 * subkey), so that a holder of the state can prove it matches and nobody else learns it.
 * `details`: ids, statuses, amounts, reasons typed by staff; never PII (it is stored in clear).
 * `actor`: default the request's caller (see `auditContextPlugin`), else `system`.
 */
export type AuditRecord = {
  orgId: string | null;
  /**
   * For changes of no org only: the chain to append to (default `platform`), so that busy
   * org-less writers (key-server logins) spread over several chains instead of queueing on one.
   */
  chain?: string;
  action: string;
  subject: AuditSubject;
  related?: AuditSubject[];
  before?: unknown;
  after?: unknown;
  details?: Record<string, string | number | boolean | null>;
  actor?: Actor;
};

/**
 * Signs and checks anchors: compact JWS over a JSON payload with the platform's signing key
 * (`verify` answers the payload, or undefined when the signature or key is not ours).
 */
export type AnchorSigner = {
  sign(payload: Record<string, unknown>): Promise<string>;
  verify(jws: string): Promise<Record<string, unknown> | undefined>;
};

/** What an anchor signs: the head of one chain at one time. */
export type AnchorPayload = { chain_id: string; seq: number; head_hash: string; anchored_at: string };

/** Where a chain first fails its check: the entry (or anchor) and why. */
export type ChainBreak = { seq: number; entryId: string | null; reason: string };
/** The verdict on one chain: `entries` walked, `anchoredSeq` the last anchor checked (0: none). */
export type ChainReport = { chainId: string; orgId: string | null; entries: number; anchoredSeq: number; ok: boolean; broken?: ChainBreak };

/** The chain an org's entries go to; `platform` for changes that belong to no org (key server, admin keys). */
export const chainIdFor = (orgId: string | null): string => (orgId ? `org:${orgId}` : 'platform');

const VERIFY_PAGE = 1000;

/**
 * SHA-256 (hex) of an entry: canonical JSON (keys sorted) of every column but `hash`, times as
 * ISO 8601 with milliseconds. Anyone holding the rows can recompute it.
 */
export function entryHash(entry: Omit<AuditEntryRow, 'hash'>): string {
  return createHash('sha256').update(canonicalEntry(entry), 'utf8').digest('hex');
}

function canonicalEntry(entry: Omit<AuditEntryRow, 'hash'>): string {
  return stringify({
    v: 1,
    id: entry.id,
    chain_id: entry.chainId,
    seq: entry.seq,
    org_id: entry.orgId,
    actor_kind: entry.actorKind,
    actor_id: entry.actorId,
    action: entry.action,
    subject_type: entry.subjectType,
    subject_id: entry.subjectId,
    related: entry.related,
    request_id: entry.requestId,
    state_digest: entry.stateDigest,
    details: entry.details,
    occurred_at: entry.occurredAt.toISOString(),
    prev_hash: entry.prevHash,
  })!;
}

const PREV_MARK = '\u0000prev_hash';
const SEQ_MARK = '\u0000seq';

/**
 * The text `entryHash` hashes, for an entry not yet linked: in three parts, to be joined by the
 * previous hash and then the entry's seq (`parts[0] + prevHash + parts[1] + seq + parts[2]`), so
 * that the database can link and hash it under the chain's lock (`appendWith`). The marks cannot
 * occur in a stored value: PostgreSQL text and jsonb refuse NUL.
 */
export function entryHashParts(entry: ChainedEntry): [string, string, string] {
  const canonical = canonicalEntry({ ...entry, seq: SEQ_MARK as unknown as number, prevHash: PREV_MARK });
  const prevMark = JSON.stringify(PREV_MARK).slice(1, -1);
  const [beforePrev, rest, ...more] = canonical.split(prevMark);
  const [beforeSeq, afterSeq, ...moreSeq] = (rest ?? '').split(JSON.stringify(SEQ_MARK));
  if (beforePrev === undefined || more.length > 0 || beforeSeq === undefined || afterSeq === undefined || moreSeq.length > 0)
    throw new Error('audit entry: the hash template does not have one place for each of prev_hash and seq');
  return [beforePrev, beforeSeq, afterSeq];
}

/**
 * The audit log: `record` appends in the caller's transaction; `verify` walks the chains;
 * `anchor` signs each chain's head; `list` and `timeline` read.
 */
export function auditService(deps: { repo: AuditRepo; keyring: Keyring; signer?: AnchorSigner; now?: () => Date }) {
  const { repo, keyring } = deps;
  const now = deps.now ?? (() => new Date());

  /** Entries recorded in an open transaction, appended when its body has resolved. */
  const pending = new WeakMap<object, ChainedEntry[]>();

  /** The entry `input` records, before it is linked into its chain; who and when are fixed now, in the request's context. */
  function chainedEntry(input: AuditRecord): ChainedEntry {
    const context = auditContext.getStore();
    const actor = input.actor ?? context?.actor() ?? SYSTEM_ACTOR;
    const hasState = input.before !== undefined || input.after !== undefined;
    return {
      id: randomUUID(),
      chainId: input.orgId ? chainIdFor(input.orgId) : (input.chain ?? chainIdFor(null)),
      orgId: input.orgId,
      actorKind: actor.kind,
      actorId: actor.id,
      action: input.action,
      subjectType: input.subject.type,
      subjectId: input.subject.id,
      related: (input.related ?? []).map((subject) => `${subject.type}:${subject.id}`),
      requestId: context?.requestId ?? null,
      stateDigest: hasState
        ? keyedHash(keyring, 'audit-state', stringify({ before: input.before ?? null, after: input.after ?? null })!)
        : null,
      details: input.details ?? {},
      occurredAt: now(),
    };
  }

  /**
   * Appends entries to their chains: per chain, lock the head (until the transaction ends), link
   * the entries after it, insert them and move the head, two statements. Run just before the
   * commit, so the chain lock, the one every write of the org queues on, is held the least.
   */
  async function flush(tx: Executor, entries: ChainedEntry[]): Promise<void> {
    const byChain = new Map<string, ChainedEntry[]>();
    for (const entry of entries) byChain.set(entry.chainId, [...(byChain.get(entry.chainId) ?? []), entry]);
    // Chains in a fixed order, so two transactions touching the same two chains cannot deadlock.
    for (const chainId of [...byChain.keys()].sort()) {
      const chained = byChain.get(chainId)!;
      let head = await repo.lockHead(chainId, chained[0]!.orgId, tx);
      const rows: AuditEntryRow[] = [];
      for (const entry of chained) {
        const row = { ...entry, seq: head.seq + 1, prevHash: head.headHash };
        const hash = entryHash(row);
        rows.push({ ...row, hash });
        head = { seq: row.seq, headHash: hash };
      }
      await repo.append(rows, tx);
    }
  }

  async function verifyChain(
    chain: { chainId: string; orgId: string | null; seq: number; headHash: string; headMissing?: true },
    external: AnchorPayload[] = [],
  ): Promise<ChainReport> {
    const report = (entries: number, anchoredSeq: number, broken?: ChainBreak): ChainReport => ({
      chainId: chain.chainId,
      orgId: chain.orgId,
      entries,
      anchoredSeq,
      ok: !broken,
      ...(broken ? { broken } : {}),
    });
    let expectedSeq = 1;
    let prevHash = GENESIS_HASH;
    let walked = 0;
    const hashes = new Map<number, string>();
    if (chain.headMissing)
      return report(0, 0, { seq: 1, entryId: null, reason: 'the chain has entries or anchors but its head row was deleted' });
    const anchor = await repo.latestAnchor(chain.chainId);
    const wanted = new Set([...(anchor ? [anchor.seq] : []), ...external.map((kept) => kept.seq)]);
    // Only up to the head read before the walk: entries appended meanwhile belong to a later check.
    walk: for (;;) {
      const page = await repo.page(chain.chainId, expectedSeq - 1, VERIFY_PAGE);
      for (const entry of page) {
        if (entry.seq > chain.seq) break walk;
        const at = (reason: string) => report(walked, 0, { seq: entry.seq, entryId: entry.id, reason });
        if (entry.seq !== expectedSeq)
          return report(walked, 0, { seq: expectedSeq, entryId: null, reason: `entry ${expectedSeq} is missing` });
        if (entry.prevHash !== prevHash) return at('prev_hash does not match the previous entry');
        if (entryHash(entry) !== entry.hash) return at('hash does not match the entry (the row was changed)');
        if (wanted.has(entry.seq)) hashes.set(entry.seq, entry.hash);
        prevHash = entry.hash;
        expectedSeq++;
        walked++;
      }
      if (page.length < VERIFY_PAGE) break;
    }
    const last = expectedSeq - 1;
    if (chain.seq !== last || chain.headHash !== prevHash)
      return report(walked, 0, {
        seq: Math.min(chain.seq, last) + 1,
        entryId: null,
        reason: `the chain head says ${chain.seq} entries, ${last} found`,
      });
    // Anchors kept outside the database (`audit anchor --out`): what the database says cannot hide a rewrite or a truncation.
    for (const kept of external) {
      const keptBreak = (reason: string) => report(walked, 0, { seq: Math.min(kept.seq, last + 1), entryId: null, reason });
      if (kept.seq > last) return keptBreak(`entries after ${last} were removed: a kept anchor covers ${kept.seq}`);
      if (hashes.get(kept.seq) !== kept.head_hash) return keptBreak(`entry ${kept.seq} differs from the kept anchor`);
    }
    const keptSeq = Math.max(0, ...external.map((kept) => kept.seq));
    if (!anchor) return report(walked, keptSeq);
    const anchorBreak = (reason: string) => report(walked, 0, { seq: Math.min(anchor.seq, last + 1), entryId: null, reason });
    if (!deps.signer) return anchorBreak('anchors cannot be checked without the signing key');
    const payload = await deps.signer.verify(anchor.signature);
    if (!payload || payload.chain_id !== anchor.chainId || payload.seq !== anchor.seq || payload.head_hash !== anchor.headHash)
      return anchorBreak('the latest anchor signature is invalid');
    if (anchor.seq > last)
      return anchorBreak(`entries after ${last} were removed: the anchor of ${anchor.createdAt.toISOString()} covers ${anchor.seq}`);
    if (hashes.get(anchor.seq) !== anchor.headHash) return anchorBreak(`entry ${anchor.seq} differs from the anchored head`);
    return report(walked, Math.max(anchor.seq, keptSeq));
  }

  /** The payloads of anchors kept outside the database, each signature checked; throws on a forged or foreign one. */
  async function keptAnchors(signatures: string[]): Promise<AnchorPayload[]> {
    if (signatures.length > 0 && !deps.signer) throw new Error('anchors cannot be checked without the signing key');
    const payloads: AnchorPayload[] = [];
    for (const signature of signatures) {
      const payload = await deps.signer!.verify(signature);
      if (!payload || typeof payload.chain_id !== 'string' || typeof payload.seq !== 'number' || typeof payload.head_hash !== 'string')
        throw new Error('a kept anchor is not signed by this platform');
      payloads.push(payload as AnchorPayload);
    }
    return payloads;
  }

  return {
    /**
     * Records one entry in `tx`, the transaction of the change it records, so a rollback leaves
     * none. Inside a `db.transaction` the entry joins the chain when the transaction's body has
     * resolved, just before the commit (see `flush`); on another executor at once. Appending locks
     * the chain head until `tx` ends: writes of one org serialise there, other orgs' do not.
     */
    async record(tx: Executor, input: AuditRecord): Promise<{ id: string }> {
      const entry = chainedEntry(input);
      const queued = pending.get(tx);
      if (queued) queued.push(entry);
      else if (beforeCommit(tx, (commitTx) => flush(commitTx, pending.get(tx) ?? []))) pending.set(tx, [entry]);
      else await flush(tx, [entry]);
      return { id: entry.id };
    },

    /**
     * Records one entry together with `change`, the caller's statement of the change it records
     * (an insert, update or delete, built and not yet run). On the database outside a transaction
     * both go in one statement (see `appendWith`), atomic by itself: one round trip, no BEGIN or
     * COMMIT. In a transaction, `change` runs in it and the entry is recorded as `record` does.
     */
    async recordWith(executor: Executor, input: AuditRecord, change: SQLWrapper & PromiseLike<unknown>): Promise<{ id: string }> {
      if (executor instanceof PgTransaction) {
        await change;
        return this.record(executor, input);
      }
      const entry = chainedEntry(input);
      const parts = entryHashParts(entry);
      if (await repo.appendWith(entry, parts, change.getSQL(), executor)) return { id: entry.id };
      // The chain's first entry: its head row is made once, then the statement runs again (the
      // failed one did nothing).
      await repo.createHead(entry.chainId, entry.orgId, executor);
      if (!(await repo.appendWith(entry, parts, change.getSQL(), executor))) throw new Error(`audit chain ${entry.chainId} has no head`);
      return { id: entry.id };
    },

    /**
     * Walks every chain (or one org's) from genesis and reports each, with its first broken link.
     * `anchors`: signatures of anchors kept outside the database (`anchor()` returns them), checked
     * too, so deleting anchors or whole chains in the database is caught. Throws when one of them is
     * not signed by this platform.
     */
    async verify(options: { orgId?: string; anchors?: string[] } = {}): Promise<ChainReport[]> {
      const kept = await keptAnchors(options.anchors ?? []);
      const only = options.orgId ? chainIdFor(options.orgId) : undefined;
      const chains = await repo.chains(only);
      const reports: ChainReport[] = [];
      for (const chain of chains)
        reports.push(
          await verifyChain(
            chain,
            kept.filter((anchor) => anchor.chain_id === chain.chainId),
          ),
        );
      // A kept anchor whose chain is gone entirely.
      for (const anchor of kept) {
        if ((only && anchor.chain_id !== only) || chains.some((chain) => chain.chainId === anchor.chain_id)) continue;
        if (reports.some((report) => report.chainId === anchor.chain_id)) continue;
        reports.push({
          chainId: anchor.chain_id,
          orgId: null,
          entries: 0,
          anchoredSeq: 0,
          ok: false,
          broken: { seq: 1, entryId: null, reason: `the chain was deleted: a kept anchor covers ${anchor.seq} entries` },
        });
      }
      return reports;
    },

    /** Signs the head of every chain that moved since its last anchor; returns the anchors made. */
    async anchor(): Promise<{ chainId: string; seq: number; headHash: string; signature: string }[]> {
      if (!deps.signer) throw new Error('audit anchors need a signer');
      const made: { chainId: string; seq: number; headHash: string; signature: string }[] = [];
      for (const chain of await repo.chains()) {
        if (chain.headMissing) continue;
        const seq = Number(chain.seq);
        const last = await repo.latestAnchor(chain.chainId);
        if (seq === 0 || (last && last.seq === seq && last.headHash === chain.headHash)) continue;
        const anchoredAt = now().toISOString();
        const signature = await deps.signer.sign({ chain_id: chain.chainId, seq, head_hash: chain.headHash, anchored_at: anchoredAt });
        await repo.insertAnchor({ chainId: chain.chainId, seq, headHash: chain.headHash, signature });
        made.push({ chainId: chain.chainId, seq, headHash: chain.headHash, signature });
      }
      return made;
    },

    list: (filter: AuditFilter, paging: { limit: number; offset: number }) => repo.list(filter, paging),

    /** Everything recorded about one subject and what names it as related, oldest first (up to 1000). */
    timeline: (subject: { type: string; id: string; orgId?: string }) => repo.timeline(subject, 1000),
  };
}

export type AuditService = ReturnType<typeof auditService>;
/** What modules need to write: `record`, and `recordWith` for a change and its entry in one statement. */
export type AuditWriter = Pick<AuditService, 'record' | 'recordWith'>;

/** A writer on `db` with no anchor signer: what a module needs when it was given none. */
export const auditWriter = (db: Executor, keyring: Keyring): AuditWriter => auditService({ repo: auditRepo(db), keyring });
