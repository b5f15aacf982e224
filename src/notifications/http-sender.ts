import net from 'node:net';
import { Agent, request } from 'undici';
import { assertAddressAllowed, EgressBlockedError, guardedLookup, type EgressPolicy } from './egress-guard.ts';

/** `interrupted`: this worker shut down (its drain deadline passed) before the endpoint answered. */
export type ErrorKind = 'timeout' | 'dns' | 'connect' | 'tls' | 'http' | 'blocked' | 'interrupted';
export type SendResult = {
  statusCode: number | null;
  durationMs: number;
  responseExcerpt: string | null;
  errorKind: ErrorKind | null;
  errorMessage: string | null;
  retryAfterSeconds: number | null;
};

const EXCERPT_BYTES = 4096;

/**
 * One signed POST, guarded against non-public destinations; never follows redirects. Never throws:
 * a failure is a `SendResult` with an `errorKind`. `interrupt`, when it fires, cuts the request
 * short and the result's kind is `interrupted` (the worker is shutting down).
 */
export function httpSender(options: { policy: EgressPolicy; timeoutMs: number; connectTimeoutMs?: number }) {
  const agent = new Agent({
    connect: { lookup: guardedLookup(options.policy), timeout: options.connectTimeoutMs ?? 5000 },
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    connections: 64,
  });

  return {
    async send(url: string, headers: Record<string, string>, body: string, interrupt?: AbortSignal): Promise<SendResult> {
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      try {
        const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
        if (net.isIP(host)) assertAddressAllowed(options.policy, host);
        const response = await request(url, {
          method: 'POST',
          headers,
          body,
          dispatcher: agent,
          signal: interrupt ? AbortSignal.any([AbortSignal.timeout(options.timeoutMs), interrupt]) : AbortSignal.timeout(options.timeoutMs),
        });
        const excerpt = await readExcerpt(response.body);
        const ok = response.statusCode >= 200 && response.statusCode < 300;
        return {
          statusCode: response.statusCode,
          durationMs: elapsed(),
          responseExcerpt: excerpt,
          errorKind: ok ? null : 'http',
          errorMessage: ok ? null : `HTTP ${response.statusCode}`,
          retryAfterSeconds: parseRetryAfter(response.headers['retry-after']),
        };
      } catch (error) {
        const kind = interrupt?.aborted
          ? { errorKind: 'interrupted' as const, errorMessage: 'the worker shut down before the endpoint answered' }
          : classify(error);
        return { statusCode: null, durationMs: elapsed(), responseExcerpt: null, retryAfterSeconds: null, ...kind };
      }
    },
    close: () => agent.close(),
  };
}

export type HttpSender = ReturnType<typeof httpSender>;

async function readExcerpt(body: AsyncIterable<Buffer> & { destroy(): void }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= EXCERPT_BYTES) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks)
    .subarray(0, EXCERPT_BYTES)
    .toString('utf8')
    .replace(/\uFFFD+$/, '');
}

function parseRetryAfter(value: string | string[] | undefined): number | null {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return null;
  const seconds = Number(text);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, Math.round((date - Date.now()) / 1000));
}

function classify(error: unknown): { errorKind: ErrorKind; errorMessage: string } {
  const cause = (error as { cause?: unknown }).cause;
  if (error instanceof EgressBlockedError || cause instanceof EgressBlockedError) {
    return { errorKind: 'blocked', errorMessage: (cause instanceof EgressBlockedError ? cause : (error as Error)).message };
  }
  const code = (error as { code?: string }).code ?? (cause as { code?: string } | undefined)?.code ?? '';
  const name = (error as Error).name;
  const message = (error as Error).message;
  if (name === 'TimeoutError' || name === 'AbortError' || code.includes('TIMEOUT'))
    return { errorKind: 'timeout', errorMessage: 'timed out' };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ENODATA')
    return { errorKind: 'dns', errorMessage: `DNS lookup failed (${code})` };
  if (/CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code) || /certificate|tls|ssl/i.test(message))
    return { errorKind: 'tls', errorMessage: message };
  return { errorKind: 'connect', errorMessage: code ? `connection failed (${code})` : message };
}
