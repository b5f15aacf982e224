import type { AuditWriter } from '../platform/audit/audit.service.ts';
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { FastifyBaseLogger } from 'fastify';
import { LRUCache } from 'lru-cache';
import pRetry from 'p-retry';
import type { Clock } from '../platform/clock.ts';
import { unseal } from '../platform/crypto/envelope.ts';
import type { Keyring } from '../platform/crypto/keyring.ts';
import type { Db, Executor } from '../platform/db/database.ts';
import { isDatabaseUnavailable, isTransactionConflict } from '../platform/db/errors.ts';
import { publish } from '../platform/events/outbox.ts';
import type { AttemptResult, ClaimedDelivery, ClaimedEndpoint, DeliveriesRepo, DeliveryRow } from './deliveries/deliveries.repo.ts';
import type { EndpointRow, EndpointsRepo } from './endpoints/endpoints.repo.ts';
import type { HttpSender, SendResult } from './http-sender.ts';
import { signatureHeader } from './signing.ts';

export const DELIVERIES_CHANNEL = 'tranche_deliveries';

export type DispatcherOptions = {
  db: Db;
  /** Records an endpoint the worker disables (actor `system`, `webhook-worker`); default none. */
  audit?: AuditWriter;
  endpoints: EndpointsRepo;
  deliveries: DeliveriesRepo;
  sender: HttpSender;
  keyring: Keyring;
  clock: Clock;
  /** Delays before each retry, in seconds, after the first try. */
  retryScheduleSeconds: number[];
  jitter?: number;
  random?: () => number;
  leaseSeconds?: number;
  /** Events fanned out per statement. */
  batchSize?: number;
  /** Sends in flight at once (default 32). */
  concurrency?: number;
  /**
   * Deliveries a worker holds at once, claimed and not yet recorded: waiting to be sent, in flight,
   * or sent and waiting for their result to be committed (default 4 × `concurrency`). A worker
   * killed at any moment sends again at most these; the rest of its claims wait for their lease.
   */
  maxHeld?: number;
  /** The sender's timeout: a send starts only while its lease can outlast it. */
  sendTimeoutMs?: number;
  disableAfterMs: number;
  log?: FastifyBaseLogger;
  /** Endpoints whose unsealed signing secrets are kept between claims (least recently used dropped first); default 1000. */
  secretCacheSize?: number;
  /** Called once per scheduled attempt after its result is recorded (metrics, the failed-attempt log line). */
  onAttempt?: (report: AttemptReport) => void;
};

/**
 * One scheduled attempt, as recorded: `attemptNumber` counts from 1; `outcome` is `succeeded`,
 * `retrying` (a retry at `nextAttemptAt`), `exhausted` (no retry: the schedule ran out, or 410
 * Gone), `superseded` (the lease had passed to another worker, which will record its own attempt)
 * or `interrupted` (cut short by this worker's shutdown; due again at once, no step used up).
 */
export type AttemptReport = {
  delivery: Pick<ClaimedDelivery, 'id' | 'eventId' | 'eventType' | 'eventCreatedAt'>;
  endpoint: Pick<ClaimedEndpoint, 'id' | 'url'>;
  result: SendResult;
  attemptNumber: number;
  outcome: 'succeeded' | 'retrying' | 'exhausted' | 'superseded' | 'interrupted';
  nextAttemptAt: Date | null;
  at: Date;
};

/**
 * An endpoint's signing secrets, unsealed, as they were at `version` of the endpoint row; each with
 * its expiry (null: the current secret), so a rotated one stops signing when its grace period ends.
 */
type CachedSecrets = { version: number; secrets: { secret: string; expiresAt: Date | null }[] };

export const secretAad = (secretId: string) => `webhook_secrets:${secretId}`;

/** The error recorded on an attempt that could not be signed: a signing secret of its endpoint does not open. */
export const UNSEALABLE_SECRET = 'endpoint secret cannot be unsealed';

/**
 * A signing secret of an endpoint did not open (its master key is no longer in the keyring, or the
 * row is corrupted). The message names the endpoint only; `cause` is the envelope's error, which
 * holds no secret.
 */
export class UnsealableSecretError extends Error {
  constructor(
    readonly endpointId: string,
    cause: unknown,
  ) {
    super(`${UNSEALABLE_SECRET}: endpoint ${endpointId}`, { cause });
    this.name = 'UnsealableSecretError';
  }
}

/** The result of an attempt that never reached the endpoint because it could not be signed. */
const unsealableResult = (): SendResult => ({
  statusCode: null,
  durationMs: 0,
  responseExcerpt: null,
  errorKind: 'secret',
  errorMessage: UNSEALABLE_SECRET,
  retryAfterSeconds: null,
});

/** How a worker that is shutting down tells a delivery pass to wind up (see `deliverDue`). */
export type DrainSignals = {
  /** Fires when shutdown starts: nothing more is claimed or sent; claims not yet sent are released. */
  stop?: AbortSignal;
  /** Fires at the drain deadline: sends still in flight are cut short and recorded as `interrupted`. */
  interrupt?: AbortSignal;
};

type Sendable = ClaimedDelivery & { endpoint: ClaimedEndpoint };
/** A claimed delivery waiting for a send slot; `checkedAt` is when its endpoint was last read (ms). */
type Ready = { delivery: Sendable; secrets: string[]; checkedAt: number };

/**
 * A delivery that has waited in the queue longer than this since its endpoint was read has the
 * endpoint read again before it is sent: one disabled, deleted or changed meanwhile is then
 * cancelled, dropped or sent with its current URL and secrets, not with the claim's. (The queue
 * can hold a delivery for most of its lease behind slow endpoints.)
 */
const RECHECK_AFTER_MS = 1000;
type Outcome = { delivery: Sendable; endpoint: ClaimedEndpoint; result: SendResult; at: Date };

/**
 * Runs `write` again while the database is unavailable (a dropped connection, a restart) or rolled
 * it back to break a deadlock or a serialization failure (recording failures locks endpoint rows,
 * as does a concurrent endpoint update or disable), up to five tries over about 3 s: a result that
 * could not be recorded would be sent again when its lease ends. `write` must be a whole
 * transaction (or one statement), so that a try rolled back leaves nothing behind.
 */
function persistently<T>(write: () => Promise<T>): Promise<T> {
  return pRetry(write, {
    retries: 4,
    minTimeout: 200,
    factor: 2,
    shouldRetry: ({ error }) => isDatabaseUnavailable(error) || isTransactionConflict(error),
  });
}

/** PostgreSQL text cannot hold U+0000 (nor can jsonb): it becomes U+FFFD. */
const storable = (text: string | null) => (text === null ? null : text.replaceAll('\u0000', '\uFFFD'));

/**
 * Turns outbox events into deliveries and delivers them, at least once, as a pipeline (the shape
 * of Svix's and Convoy's workers): fan-out, claiming, sending and recording each run as soon as
 * they have work, so sends never wait for a batch to be recorded. A delivery is claimed under a
 * lease, so a worker that dies mid-send leaves it to be claimed again when the lease ends. A worker
 * holds at most `concurrency` deliveries claimed and not yet recorded, so one killed at any moment
 * sends again at most those.
 *
 * Each stage is one statement for any number of deliveries: fan-out (events to messages and
 * deliveries), the claim (with each delivery's body and endpoint), and the results (successes in
 * one statement; failures in one, then each failing endpoint's health). Signing secrets are kept
 * unsealed in memory, keyed on the endpoint's `version`, which every change of the endpoint or its
 * secrets bumps.
 */
export function dispatcher(options: DispatcherOptions) {
  const { db, endpoints, deliveries, sender, keyring, clock } = options;
  const jitter = options.jitter ?? 0.2;
  const random = options.random ?? Math.random;
  const leaseMs = (options.leaseSeconds ?? 60) * 1000;
  const batchSize = options.batchSize ?? 250;
  const concurrency = Math.max(1, options.concurrency ?? 64);
  const maxHeld = Math.max(concurrency, options.maxHeld ?? concurrency * 4);
  // While deliveries are held, claim again only once this many more can be: fewer, larger claims.
  // An idle pipeline claims whatever it can.
  const refillAt = Math.max(1, Math.floor(concurrency / 2));
  // Result statements in flight at once (each on its own connection).
  const recorders = 1;
  const schedule = options.retryScheduleSeconds;
  const longestStep = Math.max(...schedule);
  // A send starts only while the lease has this long left, so it ends (or times out) before the
  // lease does and no other worker can claim the delivery while it is in flight.
  const sendWindowMs = Math.min(options.sendTimeoutMs ?? 15_000, leaseMs / 2);
  // Woken when deliveries may have become due (fan-out, a NOTIFY): a pass that found nothing to
  // claim claims again.
  const nudgeListeners = new Set<() => void>();

  /** Fans out one batch of outbox events (see `DeliveriesRepo.fanOut`); returns how many events. */
  async function fanOut(): Promise<number> {
    const events = await deliveries.fanOut(batchSize, clock.now());
    if (events > 0) nudge();
    return events;
  }

  function nudge() {
    for (const listener of nudgeListeners) listener();
  }

  function retryDelayMs(attemptsMade: number, result: SendResult): number {
    const base = schedule[attemptsMade - 1]! * 1000;
    const jittered = base * (1 + (random() * 2 - 1) * jitter);
    if (result.statusCode === 429 && result.retryAfterSeconds !== null) {
      return Math.max(jittered, Math.min(result.retryAfterSeconds * 1000, longestStep * 1000));
    }
    return jittered;
  }

  async function disable(endpoint: EndpointRow, reason: string, tx: Executor) {
    await endpoints.update(endpoint.id, { status: 'disabled', disabledReason: reason, disabledAt: clock.now() }, tx);
    await endpoints.cancelPending(endpoint.id, tx);
    await options.audit?.record(tx, {
      orgId: endpoint.orgId,
      action: 'webhook.endpoint.disabled',
      subject: { type: 'webhook_endpoint', id: endpoint.id },
      details: { reason },
      actor: { kind: 'system', id: 'webhook-worker' },
    });
    await publish(tx, { orgId: endpoint.orgId, type: 'webhook.endpoint.disabled', data: { webhook_id: endpoint.id, reason } });
  }

  // Unsealed secrets by endpoint id, kept between claims: a hit saves a query and an unseal per
  // endpoint and claim. An entry is used only while the endpoint row read with the claim has the
  // version it was loaded at; every change of the endpoint or its secrets bumps that version (see
  // the endpoints repo), so a rotation in any process is seen at the next claim.
  const secretCache = new LRUCache<string, CachedSecrets>({ max: options.secretCacheSize ?? 1000 });

  /**
   * The secrets that sign for `endpoint` now, newest first: from the cache when it holds them at the
   * endpoint's current `version`, else loaded and unsealed. The endpoint row is read before its
   * secrets, so an entry is never older than the version it is stored under. Throws
   * `UnsealableSecretError` when one of them does not open (nothing is cached then: signing with
   * the others only would fail receivers that verify with the one missing), or the database's error.
   */
  async function signingSecrets(endpoint: { id: string; version: number }): Promise<string[]> {
    const now = clock.now();
    let cached = secretCache.get(endpoint.id);
    if (cached?.version !== endpoint.version) {
      const rows = await endpoints.activeSecrets(endpoint.id, now);
      const open = (row: (typeof rows)[number]) => {
        try {
          return unseal(keyring, row, secretAad(row.id));
        } catch (error) {
          throw new UnsealableSecretError(endpoint.id, error);
        }
      };
      cached = { version: endpoint.version, secrets: rows.map((row) => ({ secret: open(row), expiresAt: row.expiresAt })) };
      secretCache.set(endpoint.id, cached);
    }
    return cached.secrets.filter(({ expiresAt }) => expiresAt === null || expiresAt > now).map(({ secret }) => secret);
  }

  async function send(eventId: string, body: string, url: string, secrets: string[], interrupt?: AbortSignal): Promise<SendResult> {
    const timestamp = Math.floor(clock.now().getTime() / 1000);
    return sender.send(
      url,
      {
        'content-type': 'application/json',
        'user-agent': 'Tranche-Webhooks/1',
        'webhook-id': eventId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signatureHeader(secrets, eventId, timestamp, body),
      },
      body,
      interrupt,
    );
  }

  const attemptResult = ({ delivery, endpoint, result, at }: Outcome): AttemptResult => ({
    deliveryId: delivery.id,
    url: endpoint.url,
    statusCode: result.statusCode,
    durationMs: result.durationMs,
    responseExcerpt: storable(result.responseExcerpt),
    errorKind: result.errorKind,
    errorMessage: storable(result.errorMessage),
    at,
  });

  /**
   * Failed attempts in one transaction: the deliveries and attempts in one statement, then, for
   * each endpoint that failed (in id order, so workers lock them alike), its health: failing
   * since when, disabled after `disableAfterMs` of failures or at once on 410 Gone.
   */
  async function recordFailures(failed: Outcome[], tx: Executor): Promise<AttemptReport[]> {
    const planned = failed.map((outcome) => {
      const attemptsMade = outcome.delivery.attemptCount + 1;
      const gone = outcome.result.statusCode === 410;
      const nextAttemptAt =
        gone || attemptsMade > schedule.length ? null : new Date(outcome.at.getTime() + retryDelayMs(attemptsMade, outcome.result));
      return { outcome, nextAttemptAt };
    });
    const recorded = await deliveries.recordFailed(
      planned.map(({ outcome, nextAttemptAt }) => ({ ...attemptResult(outcome), leaseUntil: outcome.delivery.leaseUntil, nextAttemptAt })),
      tx,
    );
    const attemptsAfter = new Map(recorded.map((row) => [row.id, row.attemptCount]));
    const byEndpoint = new Map<string, { gone: boolean; at: Date }>();
    for (const { outcome } of planned) {
      if (!attemptsAfter.has(outcome.delivery.id)) continue;
      const seen = byEndpoint.get(outcome.endpoint.id);
      byEndpoint.set(outcome.endpoint.id, {
        gone: (seen?.gone ?? false) || outcome.result.statusCode === 410,
        at: seen && seen.at > outcome.at ? seen.at : outcome.at,
      });
    }
    for (const endpointId of [...byEndpoint.keys()].sort()) {
      const { gone, at } = byEndpoint.get(endpointId)!;
      const locked = await endpoints.lock(endpointId, tx);
      if (!locked) continue;
      if (gone) {
        if (locked.status === 'active') await disable(locked, 'the endpoint answered 410 Gone', tx);
        continue;
      }
      const failingSince = locked.failingSince ?? at;
      if (!locked.failingSince) await endpoints.update(endpointId, { failingSince: at }, tx);
      if (locked.status === 'active' && at.getTime() - failingSince.getTime() >= options.disableAfterMs) {
        await disable(locked, `failing for ${Math.round(options.disableAfterMs / 3_600_000)} hours`, tx);
      }
    }
    return planned.map(({ outcome, nextAttemptAt }) => {
      const attemptCount = attemptsAfter.get(outcome.delivery.id);
      const report = { delivery: outcome.delivery, endpoint: outcome.endpoint, result: outcome.result, at: outcome.at };
      if (attemptCount === undefined)
        return { ...report, attemptNumber: outcome.delivery.attemptCount + 1, outcome: 'superseded', nextAttemptAt: null };
      return { ...report, attemptNumber: attemptCount, outcome: nextAttemptAt === null ? 'exhausted' : 'retrying', nextAttemptAt };
    });
  }

  /** Commits outcomes, a transaction for each kind (successes, interruptions, failures). Never throws. */
  async function recordOutcomes(outcomes: Outcome[]): Promise<void> {
    const succeeded = outcomes.filter((entry) => entry.result.errorKind === null);
    const interrupted = outcomes.filter((entry) => entry.result.errorKind === 'interrupted');
    const failed = outcomes.filter((entry) => entry.result.errorKind !== null && entry.result.errorKind !== 'interrupted');
    const report = (entry: Outcome, outcome: 'succeeded' | 'interrupted') =>
      options.onAttempt?.({ ...entry, attemptNumber: entry.delivery.attemptCount + 1, outcome, nextAttemptAt: null });
    if (succeeded.length > 0) {
      try {
        // One statement, committed on its own; in a transaction with the endpoints it brings back
        // to health when some were failing.
        const recovered = [...new Set(succeeded.filter(({ endpoint }) => endpoint.failingSince).map(({ endpoint }) => endpoint.id))];
        await persistently(() =>
          recovered.length === 0
            ? deliveries.recordSucceeded(succeeded.map(attemptResult))
            : db.transaction(async (tx) => {
                await deliveries.recordSucceeded(succeeded.map(attemptResult), tx);
                for (const endpointId of recovered.sort()) await endpoints.update(endpointId, { failingSince: null }, tx);
              }),
        );
        for (const entry of succeeded) report(entry, 'succeeded');
      } catch (error) {
        options.log?.error({ err: error, deliveries: succeeded.length }, 'recording successful attempts failed');
      }
    }
    if (interrupted.length > 0) {
      // Our shutdown, not the endpoint's failure: due again at once (another worker takes it),
      // without using up a step of the schedule or counting against the endpoint's health. Only
      // deliveries still under this worker's lease: one whose lease passed to another worker is
      // that worker's to send and record (reported `superseded`, like a failure recorded too late).
      try {
        const requeued = await persistently(() =>
          db.transaction(async (tx) => {
            // The update locks the rows it requeues, so none is deleted (with its endpoint) before
            // its attempt row references it; one deleted already is simply not requeued.
            const ids = await deliveries.requeueInterrupted(
              interrupted.map(({ delivery }) => ({ id: delivery.id, leaseUntil: delivery.leaseUntil })),
              interrupted[0]!.result.errorMessage!,
              clock.now(),
              tx,
            );
            await deliveries.insertAttempts(
              interrupted
                .filter(({ delivery }) => ids.has(delivery.id))
                .map((entry) => {
                  const { deliveryId, at, ...fields } = attemptResult(entry);
                  return { ...fields, deliveryId, createdAt: at, trigger: 'scheduled' as const };
                }),
              tx,
            );
            return ids;
          }),
        );
        for (const entry of interrupted) {
          if (requeued.has(entry.delivery.id)) report(entry, 'interrupted');
          else
            options.onAttempt?.({ ...entry, attemptNumber: entry.delivery.attemptCount + 1, outcome: 'superseded', nextAttemptAt: null });
        }
      } catch (error) {
        options.log?.error({ err: error, deliveries: interrupted.length }, 'recording interrupted attempts failed');
      }
    }
    if (failed.length > 0) {
      try {
        const reports = await persistently(() => db.transaction((tx) => recordFailures(failed, tx)));
        for (const entry of reports) options.onAttempt?.(entry);
      } catch (error) {
        options.log?.error({ err: error, deliveries: failed.length }, 'recording failed attempts failed');
      }
    }
  }

  /**
   * The outcomes of deliveries that cannot be signed (see `UnsealableSecretError`): failed attempts
   * (error kind `secret`), recorded and retried like any failure, so one endpoint whose secret does
   * not open holds up no other delivery. Logged once per endpoint, without any secret.
   */
  function unsealable(error: UnsealableSecretError, failed: Sendable[]): Outcome[] {
    options.log?.error({ endpointId: error.endpointId, deliveries: failed.length, err: error.cause }, UNSEALABLE_SECRET);
    const at = clock.now();
    return failed.map((delivery) => ({ delivery, endpoint: delivery.endpoint, result: unsealableResult(), at }));
  }

  /**
   * Claims up to `limit` deliveries and readies them: loads the signing secrets of each endpoint
   * (from the cache when current) and cancels deliveries whose endpoint is gone or disabled.
   * Returns what to send, the failed outcomes of deliveries whose endpoint's secret does not open
   * (to record), and how many were claimed.
   */
  async function claim(limit: number): Promise<{ claimed: number; ready: Ready[]; failed: Outcome[] }> {
    const claimedAt = clock.now();
    const leaseUntil = new Date(claimedAt.getTime() + leaseMs);
    const claimed = await deliveries.claim(claimedAt, leaseUntil, limit);
    if (claimed.length === 0) return { claimed: 0, ready: [], failed: [] };
    const sendable = claimed.filter((delivery): delivery is Sendable => delivery.endpoint?.status === 'active');
    const secrets = new Map<string, string[]>();
    const unopened = new Map<string, UnsealableSecretError>();
    for (const { endpoint } of sendable) {
      if (secrets.has(endpoint.id) || unopened.has(endpoint.id)) continue;
      try {
        secrets.set(endpoint.id, await signingSecrets(endpoint));
      } catch (error) {
        // One endpoint's secret fails only its own deliveries; a database error fails the claim.
        if (!(error instanceof UnsealableSecretError)) throw error;
        unopened.set(endpoint.id, error);
      }
    }
    await cancelOrphaned(claimed.filter((delivery) => delivery.endpoint?.status !== 'active'));
    const failed = [...unopened.values()].flatMap((error) =>
      unsealable(
        error,
        sendable.filter((delivery) => delivery.endpointId === error.endpointId),
      ),
    );
    const checkedAt = clock.now().getTime();
    return {
      claimed: claimed.length,
      ready: sendable
        .filter((delivery) => secrets.has(delivery.endpoint.id))
        .map((delivery) => ({ delivery, secrets: secrets.get(delivery.endpoint.id)!, checkedAt })),
      failed,
    };
  }

  /** Cancels claimed deliveries whose endpoint is disabled or gone, and drops its cached secrets. Never throws. */
  async function cancelOrphaned(orphaned: { id: string; endpointId: string }[]): Promise<void> {
    if (orphaned.length === 0) return;
    for (const { endpointId } of orphaned) secretCache.delete(endpointId);
    try {
      await persistently(() =>
        deliveries.cancel(
          orphaned.map((delivery) => delivery.id),
          clock.now(),
          db,
        ),
      );
    } catch (error) {
      // Their lease ends them anyway: they are claimed (and cancelled) again then.
      options.log?.error({ err: error, orphaned: orphaned.length }, 'cancelling deliveries of a disabled endpoint failed');
    }
  }

  /**
   * Reads the endpoints of queued deliveries again (see `RECHECK_AFTER_MS`), in one query: a
   * delivery whose endpoint is disabled is cancelled, one whose endpoint is gone (deleted with it)
   * dropped; the others get the endpoint as it is now, and its current secrets. Returns the
   * entries that must not be sent, and the failed outcomes of those whose endpoint's new secrets do
   * not open (`unsealable`; not in `dropped`: they stay held until recorded). Never throws: when the
   * endpoints cannot be read, the entries are sent as they were claimed.
   */
  async function recheck(entries: Ready[]): Promise<{ dropped: Set<Ready>; failed: Map<Ready, Outcome> }> {
    const dropped = new Set<Ready>();
    const failed = new Map<Ready, Outcome>();
    const now = clock.now().getTime();
    try {
      const rows = new Map(
        (await endpoints.findMany([...new Set(entries.map(({ delivery }) => delivery.endpointId))])).map((row) => [row.id, row]),
      );
      const orphaned: Sendable[] = [];
      const unopened = new Map<string, { error: UnsealableSecretError; entries: Ready[] }>();
      for (const entry of entries) {
        const row = rows.get(entry.delivery.endpointId);
        const seen = unopened.get(entry.delivery.endpointId);
        if (seen) {
          seen.entries.push(entry);
          continue;
        }
        if (row?.status !== 'active') {
          dropped.add(entry);
          if (row) orphaned.push(entry.delivery);
          else secretCache.delete(entry.delivery.endpointId);
          continue;
        }
        if (row.version !== entry.delivery.endpoint.version) {
          entry.delivery.endpoint = {
            id: row.id,
            orgId: row.orgId,
            url: row.url,
            status: row.status,
            version: row.version,
            failingSince: row.failingSince,
          };
          try {
            entry.secrets = await signingSecrets(row);
          } catch (error) {
            if (!(error instanceof UnsealableSecretError)) throw error;
            unopened.set(row.id, { error, entries: [entry] });
          }
        }
      }
      for (const { error, entries: unsigned } of unopened.values()) {
        const outcomes = unsealable(
          error,
          unsigned.map(({ delivery }) => delivery),
        );
        unsigned.forEach((entry, index) => failed.set(entry, outcomes[index]!));
      }
      await cancelOrphaned(orphaned);
    } catch (error) {
      options.log?.error({ err: error, deliveries: entries.length }, 'reading the endpoints of queued deliveries again failed');
    }
    for (const entry of entries) entry.checkedAt = now;
    return { dropped, failed };
  }

  /**
   * Delivers what is due as a pipeline until there is nothing left to claim. Claims (one at a time,
   * up to `maxHeld` deliveries held) feed a queue; up to `concurrency` sends run at once, each
   * started as soon as a slot frees; results are committed as they come, whatever arrived meanwhile
   * in one statement, two statements at a time. A delivery is held from its claim until its result
   * is committed. A delivery whose lease has too little time left when its turn comes is given
   * back unsent (due now). Claiming stops when a claim comes back short, until a nudge (`fanOut`,
   * or the worker's NOTIFY) says more may be due. When `signals.stop` fires, nothing more is
   * claimed or sent and the queue is given back; `signals.interrupt` cuts sends in flight short.
   * Resolves, with how many deliveries were claimed, once nothing is held; rejects with a claim's
   * error (after what was held is recorded or given back).
   */
  function deliverDue(signals: DrainSignals = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      let claimedTotal = 0;
      let held = 0;
      let inFlight = 0;
      let claiming = false;
      let recording = 0;
      let rechecking = false;
      let drained = false;
      let failure: { error: unknown } | undefined;
      const queue: Ready[] = [];
      const results: Outcome[] = [];
      const unsent: Sendable[] = [];
      const stopped = () => signals.stop?.aborted === true;

      const settle = () => {
        if (claiming || held > 0) return;
        if (!drained && !failure && !stopped()) return;
        nudgeListeners.delete(onNudge);
        signals.stop?.removeEventListener('abort', onStop);
        if (failure) reject(failure.error instanceof Error ? failure.error : new Error(String(failure.error)));
        else resolve(claimedTotal);
      };
      const onNudge = () => {
        drained = false;
        pump();
      };
      const onStop = () => {
        unsent.push(...queue.splice(0).map(({ delivery }) => delivery));
        scheduleRecord();
        settle();
      };

      const startSend = ({ delivery, secrets }: Ready) => {
        if (clock.now().getTime() > delivery.leaseUntil.getTime() - sendWindowMs) {
          unsent.push(delivery);
          return;
        }
        inFlight++;
        void send(delivery.eventId, delivery.body, delivery.endpoint.url, secrets, signals.interrupt).then((result) => {
          inFlight--;
          results.push({ delivery, endpoint: delivery.endpoint, result, at: clock.now() });
          pump();
          scheduleRecord();
        });
      };

      const pump = () => {
        while (inFlight < concurrency && queue.length > 0 && !stopped() && !rechecking) {
          if (clock.now().getTime() - queue[0]!.checkedAt > RECHECK_AFTER_MS) {
            startRecheck();
            break;
          }
          startSend(queue.shift()!);
        }
        if (unsent.length > 0) scheduleRecord();
        if (claiming || drained || failure || stopped()) return;
        const room = maxHeld - held;
        if (room <= 0 || (held > 0 && room < refillAt)) return;
        claiming = true;
        held += room;
        claim(room)
          .then(({ claimed, ready, failed }) => {
            claimedTotal += claimed;
            held -= room - ready.length - failed.length;
            if (claimed < room) drained = true;
            if (stopped()) unsent.push(...ready.map(({ delivery }) => delivery));
            else queue.push(...ready);
            if (failed.length > 0) {
              results.push(...failed);
              scheduleRecord();
            }
          })
          .catch((error: unknown) => {
            held -= room;
            failure = { error };
          })
          .finally(() => {
            claiming = false;
            pump();
            settle();
          });
      };

      const startRecheck = () => {
        rechecking = true;
        const now = clock.now().getTime();
        void recheck(queue.filter((entry) => now - entry.checkedAt > RECHECK_AFTER_MS)).then(({ dropped, failed }) => {
          rechecking = false;
          // Entries the stop gave back meanwhile are no longer in the queue: their release counts them.
          const kept = queue.filter((entry) => !dropped.has(entry) && !failed.has(entry));
          const unsigned = queue.filter((entry) => failed.has(entry));
          // Those that cannot be signed stay held until their failure is recorded.
          held -= queue.length - kept.length - unsigned.length;
          queue.splice(0, queue.length, ...kept);
          if (unsigned.length > 0) {
            results.push(...unsigned.map((entry) => failed.get(entry)!));
            scheduleRecord();
          }
          pump();
          settle();
        });
      };

      // Results are committed from the event loop's check phase: every answer that arrived in the
      // same turn is in the batch (the embedded database runs a statement on this thread, so
      // starting one at the first answer would commit them one by one).
      let recordScheduled = false;
      const scheduleRecord = () => {
        if (recordScheduled) return;
        recordScheduled = true;
        setImmediate(() => {
          recordScheduled = false;
          record();
        });
      };
      const record = () => {
        while (recording < recorders && (results.length > 0 || unsent.length > 0)) {
          recording++;
          const batch = results.splice(0);
          const giveBack = unsent.splice(0);
          void Promise.all([recordOutcomes(batch), release(giveBack)]).finally(() => {
            recording--;
            held -= batch.length + giveBack.length;
            scheduleRecord();
            pump();
            settle();
          });
        }
      };

      nudgeListeners.add(onNudge);
      signals.stop?.addEventListener('abort', onStop);
      // Every send in flight listens for the interrupt.
      if (signals.interrupt) setMaxListeners(0, signals.interrupt);
      pump();
      settle();
    });
  }

  /** Gives claimed deliveries back unsent, due now, while they are still under their claim's lease. Never throws. */
  async function release(unsent: Sendable[]): Promise<void> {
    if (unsent.length === 0) return;
    const byLease = new Map<number, string[]>();
    for (const delivery of unsent)
      byLease.set(delivery.leaseUntil.getTime(), [...(byLease.get(delivery.leaseUntil.getTime()) ?? []), delivery.id]);
    try {
      await persistently(() =>
        db.transaction(async (tx) => {
          for (const [lease, ids] of byLease) await deliveries.release(ids, new Date(lease), clock.now(), tx);
        }),
      );
    } catch (error) {
      // Their lease ends them anyway: another worker claims them then.
      options.log?.error({ err: error, unsent: unsent.length }, 'releasing unsent deliveries failed');
    }
  }

  return {
    fanOut,
    deliverDue,
    /** Wakes passes of `deliverDue` that found nothing to claim: deliveries may have become due. */
    nudge,
    /**
     * One pass: fan out new events (all of them, batch after batch), then deliver what is due (see
     * `deliverDue` for `signals`). Returns whether anything happened.
     */
    async runOnce(signals: DrainSignals = {}): Promise<boolean> {
      let events = 0;
      for (let batch = await fanOut(); batch > 0; batch = batch < batchSize ? 0 : await fanOut()) events += batch;
      const sent = await deliverDue(signals);
      return events + sent > 0;
    },

    /** A manual attempt now; the retry schedule carries on as it was. Throws when the endpoint or the message is gone. */
    async attemptManually(delivery: DeliveryRow) {
      const endpoint = await endpoints.findById(delivery.endpointId);
      if (!endpoint) throw new Error('endpoint is gone');
      const body = await deliveries.messageBody(delivery.eventId);
      if (body === undefined) throw new Error('the message is gone');
      // A secret that does not open is recorded as this attempt's failure, as a scheduled attempt's is.
      const secrets = await signingSecrets(endpoint).catch((error: unknown) => {
        if (error instanceof UnsealableSecretError) return undefined;
        throw error;
      });
      const result = secrets ? await send(delivery.eventId, body, endpoint.url, secrets) : unsealableResult();
      const now = clock.now();
      return db.transaction(async (tx) => {
        const [attempt] = await deliveries.insertAttempts(
          [{ deliveryId: delivery.id, trigger: 'manual', url: endpoint.url, createdAt: now, ...attemptFields(result) }],
          tx,
        );
        const current = (await deliveries.lock(delivery.id, tx))!;
        if (result.errorKind === null && current.status !== 'succeeded') {
          await deliveries.update(
            delivery.id,
            {
              status: 'succeeded',
              succeededAt: now,
              nextAttemptAt: null,
              leaseUntil: null,
              lastStatusCode: result.statusCode,
              lastError: null,
              updatedAt: now,
            },
            tx,
          );
          if (endpoint.failingSince) await endpoints.update(endpoint.id, { failingSince: null }, tx);
        } else if (result.errorKind !== null) {
          await deliveries.update(
            delivery.id,
            { lastStatusCode: result.statusCode, lastError: storable(result.errorMessage), updatedAt: now },
            tx,
          );
        }
        return attempt!;
      });
    },

    newEventId: () => randomUUID(),
  };
}

export type Dispatcher = ReturnType<typeof dispatcher>;

function attemptFields(result: SendResult) {
  return {
    statusCode: result.statusCode,
    durationMs: result.durationMs,
    responseExcerpt: storable(result.responseExcerpt),
    errorKind: result.errorKind,
    errorMessage: storable(result.errorMessage),
  };
}
