import type { FastifyBaseLogger } from 'fastify';
import type { AuditService } from './audit.service.ts';

/**
 * Anchors the audit chains every `intervalSeconds` (0: never) until the returned stop is called.
 * A failed pass is logged and retried at the next tick; passes never overlap.
 */
export function startAnchoring(audit: Pick<AuditService, 'anchor'>, intervalSeconds: number, log?: FastifyBaseLogger): () => Promise<void> {
  if (intervalSeconds <= 0) return async () => undefined;
  let running: Promise<void> | undefined;
  const tick = () => {
    if (running) return;
    running = audit
      .anchor()
      .then(
        (made) => {
          if (made.length > 0) log?.info({ anchors: made.length }, 'audit chains anchored');
        },
        (error: unknown) => log?.error({ err: error }, 'audit anchoring failed'),
      )
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(tick, intervalSeconds * 1000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
