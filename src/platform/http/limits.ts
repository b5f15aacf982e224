import { sql } from 'drizzle-orm';
import { keyedHash } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { queryRows, type Db, type Executor } from '../db/database.ts';
import { AppError } from './errors.ts';

/**
 * Fixed-window counters in PostgreSQL (the `rate_limit_counters` table the HTTP rate limiter uses),
 * for limits that are not one-request-one-hit: mails per recipient, invites per account, failed
 * key guesses per client address. Keys that name a person are stored as keyed hashes.
 */
export function windowCounters(db: Db, keyring: Keyring, namespace: string) {
  const fullKey = (key: string) => `${namespace}:${keyedHash(keyring, 'rate-limit', key)}`;
  return {
    /**
     * Adds `amount` to the key's window (opened for `windowMs` if none is running); the new count.
     * In `tx`, the addition stands only if `tx` commits: a limit on what a change sends (mail,
     * invites) counts only what was sent.
     */
    async add(key: string, amount: number, windowMs: number, tx: Executor = db): Promise<{ count: number; retryAfterSeconds: number }> {
      const rows = await queryRows<{ count: number; ttl: number }>(
        tx,
        sql`
        insert into rate_limit_counters (key, count, reset_at)
        values (${fullKey(key)}, ${amount}, now() + make_interval(secs => ${windowMs / 1000}))
        on conflict (key) do update set
          count = case when rate_limit_counters.reset_at <= now() then ${amount} else rate_limit_counters.count + ${amount} end,
          reset_at = case when rate_limit_counters.reset_at <= now()
            then now() + make_interval(secs => ${windowMs / 1000}) else rate_limit_counters.reset_at end
        returning count, greatest(1, ceil(extract(epoch from (reset_at - now()))))::int as ttl`,
      );
      return { count: Number(rows[0]!.count), retryAfterSeconds: Number(rows[0]!.ttl) };
    },
    /** The key's count in its running window (0 when none runs). */
    async current(key: string): Promise<{ count: number; retryAfterSeconds: number }> {
      const rows = await queryRows<{ count: number; ttl: number }>(
        db,
        sql`select count, greatest(1, ceil(extract(epoch from (reset_at - now()))))::int as ttl
            from rate_limit_counters where key = ${fullKey(key)} and reset_at > now()`,
      );
      return rows[0] ? { count: Number(rows[0].count), retryAfterSeconds: Number(rows[0].ttl) } : { count: 0, retryAfterSeconds: 0 };
    },
  };
}

export type WindowCounters = ReturnType<typeof windowCounters>;

/** Thrown when a client address has used up its failed guesses; maps to 429 RATE_LIMITED. */
export class TooManyGuesses extends AppError {
  constructor(readonly retryAfterSeconds: number) {
    super('RATE_LIMITED', `Too many failed attempts; retry in ${retryAfterSeconds} s`);
  }
}

/**
 * Failed guesses of API keys and admin keys, per client address (`request.ip`, which honours only
 * the configured trusted proxies). Once an address has `maxPerMinute` failures, every attempt from
 * it is refused without checking the key, right or wrong, until the window ends.
 */
export function guessLimiter(counters: WindowCounters, maxPerMinute: number) {
  return {
    async assertAllowed(clientAddress: string): Promise<void> {
      const { count, retryAfterSeconds } = await counters.current(`guess:${clientAddress}`);
      if (count >= maxPerMinute) throw new TooManyGuesses(retryAfterSeconds);
    },
    async failed(clientAddress: string): Promise<void> {
      await counters.add(`guess:${clientAddress}`, 1, 60_000);
    },
  };
}

export type GuessLimiter = ReturnType<typeof guessLimiter>;
