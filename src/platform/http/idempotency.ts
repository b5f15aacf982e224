import { createHash, randomUUID } from 'node:crypto';
import { and, eq, lt, or, sql } from 'drizzle-orm';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Principal, Reviewer } from '../auth/principal.ts';
import { rewrap, seal, unseal } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { Db, Executor } from '../db/database.ts';
import { idempotencyKeys } from '../platform.tables.ts';
import type { JobMetrics } from '../observability/metrics.ts';
import { throttled } from '../throttle.ts';
import { AppError } from './errors.ts';

const WRITE_METHODS = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);
const RETENTION_HOURS = 24;
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set false on routes whose responses must never be stored (token issuance). */
    idempotent?: boolean;
  }
  interface FastifyRequest {
    idempotencyRecord: { scope: string; key: string; owner: string } | null;
  }
}

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
 * takes it over and runs; only the request that holds the key may complete or release it.
 */
export const idempotencyPlugin = fp(
  async (app: FastifyInstance, options: { db: Db; keyring: Keyring; leaseSeconds: number; jobs?: JobMetrics }) => {
    const { db, keyring } = options;
    const sweep = async () => {
      await db.delete(idempotencyKeys).where(lt(idempotencyKeys.expiresAt, sql`now()`));
    };
    const sweepExpired = throttled(() => (options.jobs ? options.jobs.track('idempotency_sweep', sweep) : sweep()), 60_000);
    app.decorateRequest('idempotencyRecord', null);

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
              eq(idempotencyKeys.state, 'in_progress'),
              eq(idempotencyKeys.requestHash, hash),
              or(sql`${idempotencyKeys.leaseUntil} is null`, lt(idempotencyKeys.leaseUntil, sql`now()`)),
            ),
          ),
        })
        .returning({ scope: idempotencyKeys.scope });
      if (claimed.length > 0) {
        request.idempotencyRecord = { scope, key, owner };
        sweepExpired();
        return;
      }

      const [existing] = await db
        .select()
        .from(idempotencyKeys)
        .where(and(eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key)));
      if (!existing) throw new AppError('CONFLICT', 'A request with this Idempotency-Key is in progress; retry shortly');
      if (existing.requestHash !== hash) {
        throw new AppError('IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used with a different request');
      }
      if (existing.state !== 'completed' || !existing.responseCiphertext) {
        throw new AppError('CONFLICT', 'A request with this Idempotency-Key is in progress; retry shortly');
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
      if (!record) return payload;
      request.idempotencyRecord = null;
      // Only while this request still holds the key: after its lease another request may have taken it over.
      const where = and(
        eq(idempotencyKeys.scope, record.scope),
        eq(idempotencyKeys.key, record.key),
        eq(idempotencyKeys.owner, record.owner),
      );
      if (reply.statusCode >= 500 || (typeof payload !== 'string' && !Buffer.isBuffer(payload))) {
        await db.delete(idempotencyKeys).where(where);
        return payload;
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
  },
);

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
