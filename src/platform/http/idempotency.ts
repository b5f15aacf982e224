import { createHash, randomUUID } from 'node:crypto';
import { and, eq, inArray, lt, or, sql } from 'drizzle-orm';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Principal, Reviewer } from '../auth/principal.ts';
import { rewrap, seal, unseal } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { commitParticipant, type CommitParticipant, type Db, type Executor, type Tx } from '../db/database.ts';
import type { JobMetrics } from '../observability/metrics.ts';
import { idempotencyKeys } from '../platform.tables.ts';
import { throttled } from '../throttle.ts';
import { AppError } from './errors.ts';

const WRITE_METHODS = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);
const RETENTION_HOURS = 24;
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set false on routes whose responses must never be stored (token issuance). */
    idempotent?: boolean;
    /**
     * Set true where a retry may run again after the first request committed its writes and then
     * died before answering, because the service itself supersedes the interrupted work (KYC
     * submission: the interrupted verification is swept to `error`). Elsewhere such a retry is refused.
     */
    idempotentRerun?: boolean;
  }
  interface FastifyRequest {
    idempotencyRecord: { scope: string; key: string; owner: string } | null;
  }
}

/** `leaseSeconds`: how long a request holds its key without renewing it; `jobs` counts the expiry sweeps. */
type IdempotencyOptions = { db: Db; keyring: Keyring; leaseSeconds: number; jobs?: JobMetrics };

/** Whose keys a key lives among: a user, an org's API key, or a platform admin key (back office). */
function scopeOf(caller: Principal | Reviewer): string {
  if (caller.kind === 'platform_admin') return `admin:${caller.adminKeyId}`;
  return caller.kind === 'user' || caller.kind === 'org_admin' ? `user:${caller.userId}` : `org:${caller.orgId}`;
}

function requestHash(request: FastifyRequest): string {
  return createHash('sha256')
    .update(`${request.method} ${request.url}\n${JSON.stringify(request.body ?? null)}`)
    .digest('hex');
}

/**
 * `Idempotency-Key` on authenticated writes: the first response for a key is stored (sealed, as it
 * may carry PII) for 24 h and replayed for the same key and body; the same key with another body
 * is refused, and so is a retry while the first request is still running. 5xx answers are not kept,
 * so the client can retry them. The running request holds the key under a lease of `leaseSeconds`:
 * a record still in progress after it was left by a process that died mid-request, and a retry
 * takes it over and runs; only the request that holds the key may complete or release it. The
 * lease is renewed every third of `leaseSeconds` while the request runs.
 *
 * Exactly once: every transaction the request commits also marks the record `committed`, in that
 * same transaction, and only if the request still holds the key (else it rolls back: a retry took
 * over). A process that dies after that commit but before the response is stored leaves a
 * `committed` record, and the retry is refused with 409 `IDEMPOTENCY_REQUEST_INTERRUPTED` instead of
 * writing twice (except on routes with `idempotentRerun`). A 5xx after the commit is stored like
 * any other answer.
 */
export const idempotencyPlugin = fp(async (app: FastifyInstance, options: IdempotencyOptions) => {
  const { db, keyring } = options;
  const sweep = async () => {
    await db.delete(idempotencyKeys).where(lt(idempotencyKeys.expiresAt, sql`now()`));
  };
  const sweepExpired = throttled(() => (options.jobs ? options.jobs.track('idempotency_sweep', sweep) : sweep()), 60_000);
  app.decorateRequest('idempotencyRecord', null);
  const renewEveryMs = Math.max(100, (options.leaseSeconds * 1000) / 3);
  const participants = new WeakMap<FastifyRequest, CommitParticipant & { heartbeat?: NodeJS.Timeout }>();

  // Every write carrying a key runs inside its own participant slot, so that the transactions its
  // handler opens can mark the record. A callback hook, so that the rest of the request runs in it;
  // after the body is read, whose stream events would run outside it.
  app.addHook('preValidation', (request, _reply, done) => {
    if (request.headers['idempotency-key'] === undefined || !WRITE_METHODS.has(request.method)) return done();
    const participant: CommitParticipant = {};
    participants.set(request, participant);
    commitParticipant.run(participant, done);
  });

  app.addHook('preHandler', async (request, reply) => {
    const key = request.headers['idempotency-key'];
    if (key === undefined || !WRITE_METHODS.has(request.method) || request.routeOptions.config.idempotent === false) return;
    if (typeof key !== 'string' || !KEY_PATTERN.test(key)) {
      throw new AppError('VALIDATION_ERROR', 'Idempotency-Key must be 1-255 visible ASCII characters', [
        { field: 'Idempotency-Key', message: 'must be 1-255 visible ASCII characters' },
      ]);
    }
    const caller = request.principal ?? request.reviewer;
    if (!caller) return;
    const scope = scopeOf(caller);
    const hash = requestHash(request);
    const expiresAt = sql`now() + make_interval(hours => ${RETENTION_HOURS})`;
    const leaseUntil = sql`now() + make_interval(secs => ${options.leaseSeconds})`;
    const owner = randomUUID();

    const claimed = await db
      .insert(idempotencyKeys)
      .values({ scope, key, requestHash: hash, state: 'in_progress', owner, leaseUntil, expiresAt })
      .onConflictDoUpdate({
        target: [idempotencyKeys.scope, idempotencyKeys.key],
        set: {
          requestHash: hash,
          state: 'in_progress',
          owner,
          leaseUntil,
          responseStatus: null,
          responseCiphertext: null,
          expiresAt,
          createdAt: sql`now()`,
        },
        // An expired record, or one whose request died holding it (same request only: another body gets 422).
        setWhere: or(
          lt(idempotencyKeys.expiresAt, sql`now()`),
          and(
            request.routeOptions.config.idempotentRerun
              ? inArray(idempotencyKeys.state, ['in_progress', 'committed'])
              : eq(idempotencyKeys.state, 'in_progress'),
            eq(idempotencyKeys.requestHash, hash),
            or(sql`${idempotencyKeys.leaseUntil} is null`, lt(idempotencyKeys.leaseUntil, sql`now()`)),
          ),
        ),
      })
      .returning({ scope: idempotencyKeys.scope });
    if (claimed.length > 0) {
      const record = { scope, key, owner };
      request.idempotencyRecord = record;
      const participant = participants.get(request);
      if (participant) {
        participant.beforeCommit = (tx) => markCommitted(tx, record);
        participant.heartbeat = setInterval(() => void renew(record).catch(() => undefined), renewEveryMs).unref();
      }
      sweepExpired();
      return;
    }

    const [existing] = await db
      .select()
      .from(idempotencyKeys)
      .where(and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key)));
    if (!existing)
      throw new AppError('IDEMPOTENCY_REQUEST_IN_PROGRESS', 'A request with this Idempotency-Key is in progress; retry shortly');
    if (existing.requestHash !== hash) {
      throw new AppError('IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used with a different request');
    }
    if (existing.state === 'committed' && existing.leaseUntil !== null && existing.leaseUntil.getTime() < Date.now()) {
      throw new AppError(
        'IDEMPOTENCY_REQUEST_INTERRUPTED',
        'The first request with this Idempotency-Key made its changes but was interrupted before it answered; read the resource instead of retrying',
      );
    }
    if (existing.state !== 'completed' || !existing.responseCiphertext) {
      throw new AppError('IDEMPOTENCY_REQUEST_IN_PROGRESS', 'A request with this Idempotency-Key is in progress; retry shortly');
    }
    const body = unseal(
      keyring,
      { keyId: existing.responseKeyId!, wrappedKey: existing.responseWrappedKey!, ciphertext: existing.responseCiphertext },
      `idempotency:${scope}:${key}`,
    );
    return reply.code(existing.responseStatus!).header('idempotent-replayed', 'true').type('application/json; charset=utf-8').send(body);
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const record = request.idempotencyRecord;
    // Work the request leaves running after its answer commits on its own.
    endParticipation(request);
    if (!record) return payload;
    request.idempotencyRecord = null;
    // Only while this request still holds the key: after its lease another request may have taken it over.
    const where = and(
      eq(idempotencyKeys.scope, record.scope),
      eq(idempotencyKeys.key, record.key),
      eq(idempotencyKeys.owner, record.owner),
    );
    if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) {
      await db.delete(idempotencyKeys).where(where);
      return payload;
    }
    if (reply.statusCode >= 500) {
      // Nothing was written: the client may retry. Once something was, the answer is kept like any other.
      const released = await db
        .delete(idempotencyKeys)
        .where(and(where, eq(idempotencyKeys.state, 'in_progress')))
        .returning({ key: idempotencyKeys.key });
      if (released.length > 0) return payload;
    }
    const sealed = seal(keyring, payload.toString(), `idempotency:${record.scope}:${record.key}`);
    await db
      .update(idempotencyKeys)
      .set({
        state: 'completed',
        leaseUntil: null,
        responseStatus: reply.statusCode,
        responseKeyId: sealed.keyId,
        responseWrappedKey: sealed.wrappedKey,
        responseCiphertext: sealed.ciphertext,
      })
      .where(where);
    return payload;
  });

  // A request that ends without an answer (client gone) stops renewing; the lease then lapses.
  app.addHook('onResponse', async (request) => endParticipation(request));
  app.addHook('onRequestAbort', async (request) => endParticipation(request));

  function endParticipation(request: FastifyRequest): void {
    const participant = participants.get(request);
    if (!participant) return;
    participant.beforeCommit = undefined;
    clearInterval(participant.heartbeat);
  }

  /** In the request's own transaction: its writes happened. Throws (rolls back) if the key was taken over. */
  /**
   * Marks the record committed in `tx` and makes its lease run at least `leaseSeconds` past that
   * transaction's `now()` (a heartbeat may already have moved it further): a lease the same
   * transaction gives a row of its own (a KYC submission's) ends no later than the key's, so a
   * retry that takes the key over finds that lease over too.
   */
  async function markCommitted(tx: Tx, record: { scope: string; key: string; owner: string }): Promise<void> {
    const marked = await tx
      .update(idempotencyKeys)
      .set({
        state: 'committed',
        leaseUntil: sql`greatest(${idempotencyKeys.leaseUntil}, now() + make_interval(secs => ${options.leaseSeconds}))`,
      })
      .where(and(eq(idempotencyKeys.scope, record.scope), eq(idempotencyKeys.key, record.key), eq(idempotencyKeys.owner, record.owner)))
      .returning({ key: idempotencyKeys.key });
    if (marked.length === 0) {
      throw new AppError('CONFLICT', 'This request lost its Idempotency-Key to a retry; nothing was changed');
    }
  }

  /** Extends the lease of a record this request still holds and has not completed. */
  async function renew(record: { scope: string; key: string; owner: string }): Promise<void> {
    await db
      .update(idempotencyKeys)
      .set({ leaseUntil: sql`now() + make_interval(secs => ${options.leaseSeconds})` })
      .where(
        and(
          eq(idempotencyKeys.scope, record.scope),
          eq(idempotencyKeys.key, record.key),
          eq(idempotencyKeys.owner, record.owner),
          inArray(idempotencyKeys.state, ['in_progress', 'committed']),
        ),
      );
  }
});

/** Re-wraps stored responses under the active master key. */
export async function rewrapIdempotencyResponses(tx: Executor, keyring: Keyring): Promise<number> {
  const rows = await tx
    .select()
    .from(idempotencyKeys)
    .where(sql`${idempotencyKeys.responseKeyId} is not null`)
    .for('update');
  let count = 0;
  for (const row of rows) {
    if (row.responseKeyId === keyring.activeKeyId) continue;
    const sealed = rewrap(keyring, { keyId: row.responseKeyId!, wrappedKey: row.responseWrappedKey!, ciphertext: row.responseCiphertext! });
    await tx
      .update(idempotencyKeys)
      .set({ responseKeyId: sealed.keyId, responseWrappedKey: sealed.wrappedKey })
      .where(and(eq(idempotencyKeys.scope, row.scope), eq(idempotencyKeys.key, row.key)));
    count++;
  }
  return count;
}
