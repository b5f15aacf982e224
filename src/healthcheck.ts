/**
 * The container's HEALTHCHECK: exits 0 when this process's readiness route answers 200, else 1.
 * It asks HEALTH_PORT (the worker's WORKER_HTTP_PORT) or PORT on 127.0.0.1, within 2 seconds.
 */
const port = process.env.HEALTH_PORT ?? process.env.PORT ?? '3000';
try {
  const response = await fetch(`http://127.0.0.1:${port}/health/ready`, { signal: AbortSignal.timeout(2000) });
  process.exit(response.ok ? 0 : 1);
} catch {
  process.exit(1);
}
