import { lt, sql } from 'drizzle-orm';
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import { keyedHash } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { queryRows, type Db } from '../db/database.ts';
import { rateLimitCounters } from '../platform.tables.ts';
import { throttled } from '../throttle.ts';

/**
 * Fixed-window counters in PostgreSQL, so every API process shares one limit.
 * One upsert per request: the window resets in the same statement once it has passed. Keys (a
 * client address, an email) are stored as keyed hashes (`rate-limit`), never in clear.
 */
export function postgresRateLimitStore(db: Db, keyring: Keyring, namespace: string): FastifyRateLimitStoreCtor {
  const sweepExpired = throttled(
    () => db.delete(rateLimitCounters).where(lt(rateLimitCounters.resetAt, sql`now() - interval '1 minute'`)),
    60_000,
  );
  class PostgresRateLimitStore implements FastifyRateLimitStore {
    incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number) {
      const windowMs = Math.max(1, Math.trunc(timeWindow));
      const fullKey = `${namespace}:${keyedHash(keyring, 'rate-limit', key)}`;
      queryRows<{ count: number; ttl: number }>(
        db,
        sql`
        insert into rate_limit_counters (key, count, reset_at)
        values (${fullKey}, 1, now() + make_interval(secs => ${windowMs / 1000}))
        on conflict (key) do update set
          count = case when rate_limit_counters.reset_at <= now() then 1 else rate_limit_counters.count + 1 end,
          reset_at = case when rate_limit_counters.reset_at <= now()
            then now() + make_interval(secs => ${windowMs / 1000}) else rate_limit_counters.reset_at end
        returning count, greatest(0, ceil(extract(epoch from (reset_at - now())) * 1000))::int as ttl`,
      )
        .then((rows) => {
          const row = rows[0]!;
          callback(null, { current: Number(row.count), ttl: Number(row.ttl) });
          sweepExpired();
        })
        .catch((error: Error) => callback(error));
    }

    child(): FastifyRateLimitStore {
      return this;
    }
  }

  return PostgresRateLimitStore;
}
