import { lt, sql, type SQL } from 'drizzle-orm';
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { FastifyReply } from 'fastify';
import { keyedHash } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { queryRows, type Db } from '../db/database.ts';
import { rateLimitCounters as counterTable } from '../platform.tables.ts';
import { throttled } from '../throttle.ts';

/** One hit of a counter: the count in its window, this one included, and the milliseconds the window has left. */
export type CounterHit = { current: number; ttl: number };

/**
 * Fixed-window counters in PostgreSQL, so every API process shares one limit. One upsert per
 * hit: the window resets in the same statement once it has passed. Keys (a client address, an
 * email) are stored as keyed hashes (`rate-limit`), never in clear. A hit is its own statement
 * (`incr`) or rides in the caller's (`along`), so a route can count and read in one round trip.
 */
export function rateLimitCounters(db: Db, keyring: Keyring, namespace: string) {
  const sweepExpired = throttled(() => db.delete(counterTable).where(lt(counterTable.resetAt, sql`now() - interval '1 minute'`)), 60_000);
  const upsert = (key: string, windowMs: number): SQL => {
    const seconds = Math.max(1, Math.trunc(windowMs)) / 1000;
    return sql`
        insert into rate_limit_counters (key, count, reset_at)
        values (${`${namespace}:${keyedHash(keyring, 'rate-limit', key)}`}, 1, now() + make_interval(secs => ${seconds}))
        on conflict (key) do update set
          count = case when rate_limit_counters.reset_at <= now() then 1 else rate_limit_counters.count + 1 end,
          reset_at = case when rate_limit_counters.reset_at <= now()
            then now() + make_interval(secs => ${seconds}) else rate_limit_counters.reset_at end
        returning count as hit_count, greatest(0, ceil(extract(epoch from (reset_at - now())) * 1000))::int as hit_ttl`;
  };
  const read = (row: { count: number; ttl: number }): CounterHit => {
    sweepExpired();
    return { current: Number(row.count), ttl: Number(row.ttl) };
  };
  type Returned = { hit_count: number; hit_ttl: number };
  return {
    /** Counts one hit of `key` in its own statement. */
    async incr(key: string, windowMs: number): Promise<CounterHit> {
      const [row] = await queryRows<Returned>(db, upsert(key, windowMs));
      return read({ count: row!.hit_count, ttl: row!.hit_ttl });
    },
    /**
     * One hit of `key` as a CTE of the caller's statement: put `cte` in `db.with(...)`, select
     * `fields` (from the CTE: it always has its one row), and give what they returned to `result`.
     * A data-modifying CTE runs to completion whatever the rest of the statement does.
     */
    along(key: string, windowMs: number) {
      const cte = db
        .$with('rate_limit_hit', { count: sql<number>`hit_count`.as('hit_count'), ttl: sql<number>`hit_ttl`.as('hit_ttl') })
        .as(upsert(key, windowMs));
      return { cte, fields: { count: cte.count, ttl: cte.ttl }, result: read };
    },
  };
}

export type RateLimitCounters = ReturnType<typeof rateLimitCounters>;
/** A counter hit that rides in another statement (`RateLimitCounters['along']`). */
export type CounterAlong = ReturnType<RateLimitCounters['along']>;

/** The `@fastify/rate-limit` store over `rateLimitCounters(db, keyring, namespace)`. */
export function postgresRateLimitStore(counters: RateLimitCounters): FastifyRateLimitStoreCtor {
  class PostgresRateLimitStore implements FastifyRateLimitStore {
    incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number) {
      counters.incr(key, timeWindow).then(
        (hit) => callback(null, hit),
        (error: Error) => callback(error),
      );
    }

    child(): FastifyRateLimitStore {
      return this;
    }
  }

  return PostgresRateLimitStore;
}

/**
 * What `@fastify/rate-limit` does with a hit, for a route that counts in its own statement
 * (`along`): the `x-ratelimit-*` headers, and past `max` also `retry-after` and the caller's
 * error, thrown.
 */
export function enforceRateLimit(reply: FastifyReply, max: number, hit: CounterHit, exceeded: (retryAfterSeconds: number) => Error): void {
  const retryAfterSeconds = Math.ceil(hit.ttl / 1000);
  reply.header('x-ratelimit-limit', max);
  reply.header('x-ratelimit-remaining', Math.max(0, max - hit.current));
  reply.header('x-ratelimit-reset', retryAfterSeconds);
  if (hit.current <= max) return;
  reply.header('retry-after', retryAfterSeconds);
  throw exceeded(retryAfterSeconds);
}
