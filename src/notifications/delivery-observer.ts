import type { FastifyBaseLogger } from 'fastify';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { metricIn, scrapeSample } from '../platform/observability/metrics.ts';
import type { Backlog } from './deliveries/deliveries.repo.ts';
import type { AttemptReport } from './dispatcher.ts';

/** What a failed attempt's log line says (never the payload, the URL beyond its host, or a secret). */
export type FailedAttemptLine = {
  endpointId: string;
  endpointHost: string;
  deliveryId: string;
  eventId: string;
  eventType: string;
  attempt: number;
  outcome: AttemptReport['outcome'];
  statusCode: number | null;
  errorKind: string | null;
  error: string | null;
  durationMs: number;
  nextAttemptAt: string | null;
};

export const FAILED_ATTEMPT_MESSAGE = 'webhook attempt failed';
export const EXHAUSTED_MESSAGE = 'webhook delivery failed for good';

/** A URL's query or credentials must not reach a log line, even inside an error message. */
const scrubUrls = (text: string) => text.replace(/\b(https?:\/\/)[^\s/]*@/g, '$1').replace(/\?[^\s)'"]*/g, '?[redacted]');

/** The log fields of a failed attempt (see `FailedAttemptLine`). */
export function failedAttemptLine(report: AttemptReport): FailedAttemptLine {
  let endpointHost = '';
  try {
    endpointHost = new URL(report.endpoint.url).host;
  } catch {
    // an endpoint URL is validated on creation; an unparsable one is logged without its host
  }
  return {
    endpointId: report.endpoint.id,
    endpointHost,
    deliveryId: report.delivery.id,
    eventId: report.delivery.eventId,
    eventType: report.delivery.eventType,
    attempt: report.attemptNumber,
    outcome: report.outcome,
    statusCode: report.result.statusCode,
    errorKind: report.result.errorKind,
    error: report.result.errorMessage === null ? null : scrubUrls(report.result.errorMessage),
    durationMs: report.result.durationMs,
    nextAttemptAt: report.nextAttemptAt?.toISOString() ?? null,
  };
}

const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 7200, 21_600, 86_400];

/**
 * Webhook delivery metrics and the failed-attempt log line. Per attempt:
 * `tranche_webhook_attempts_total{result,error_kind}` (result: succeeded, retrying, exhausted,
 * superseded; error_kind: none, http, timeout, connect, dns, tls, blocked, secret),
 * `tranche_webhook_attempt_duration_seconds` (the HTTP exchange), and on success
 * `tranche_webhook_delivery_latency_seconds` (the event's commit to the receiver's 2xx, retries
 * included). At scrape time, from the database: `tranche_webhook_backlog_deliveries{state}` (due,
 * scheduled, sending) and `tranche_webhook_backlog_oldest_due_age_seconds`. A failed attempt logs
 * one line at warn, or at error when the delivery is given up.
 */
export function deliveryObserver(options: {
  registry: Registry;
  log?: FastifyBaseLogger;
  backlog: () => Promise<Backlog>;
  /** Longest a scrape waits for the backlog query (HEALTH_TIMEOUT_MS). */
  timeoutMs: number;
}) {
  const { registry } = options;
  const attempts = metricIn(registry, Counter, {
    name: 'tranche_webhook_attempts_total',
    help: 'Scheduled webhook delivery attempts by result (succeeded, retrying, exhausted, superseded) and error kind',
    labelNames: ['result', 'error_kind'] as const,
  });
  const attemptDuration = metricIn(registry, Histogram, {
    name: 'tranche_webhook_attempt_duration_seconds',
    help: 'Duration of one webhook HTTP attempt in seconds, up to WEBHOOK_TIMEOUT_MS',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60],
  });
  const latency = metricIn(registry, Histogram, {
    name: 'tranche_webhook_delivery_latency_seconds',
    help: "Seconds from an event's commit to the receiver's 2xx, retries included",
    buckets: LATENCY_BUCKETS,
  });
  const sample = scrapeSample(options.backlog, options.timeoutMs);
  metricIn(registry, Gauge, {
    name: 'tranche_webhook_backlog_deliveries',
    help: 'Webhook deliveries not finished, by state: due (waiting for a worker), scheduled (a retry later), sending (the same in every process)',
    labelNames: ['state'] as const,
    async collect() {
      const backlog = await sample();
      for (const state of ['due', 'scheduled', 'sending'] as const) this.set({ state }, backlog?.[state] ?? Number.NaN);
    },
  });
  metricIn(registry, Gauge, {
    name: 'tranche_webhook_backlog_oldest_due_age_seconds',
    help: 'Seconds the longest-waiting due webhook delivery has been due; 0 when none (the same in every process)',
    async collect() {
      this.set((await sample())?.oldestDueAgeSeconds ?? Number.NaN);
    },
  });

  return {
    /** The dispatcher's `onAttempt`: counts and times the attempt, and logs it when it failed. Never throws. */
    onAttempt: (report: AttemptReport): void => {
      try {
        attempts.inc({ result: report.outcome, error_kind: report.result.errorKind ?? 'none' });
        attemptDuration.observe(report.result.durationMs / 1000);
        if (report.outcome === 'succeeded') {
          latency.observe(Math.max(0, (report.at.getTime() - report.delivery.eventCreatedAt.getTime()) / 1000));
          return;
        }
        const line = failedAttemptLine(report);
        if (report.outcome === 'exhausted') options.log?.error(line, EXHAUSTED_MESSAGE);
        else options.log?.warn(line, FAILED_ATTEMPT_MESSAGE);
      } catch (error) {
        options.log?.error({ err: error, deliveryId: report.delivery.id }, 'observing a webhook attempt failed');
      }
    },
  };
}
