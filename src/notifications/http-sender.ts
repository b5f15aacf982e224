import net from 'node:net';
import { LRUCache } from 'lru-cache';
import { Agent, request, type Dispatcher } from 'undici';
import { assertAddressAllowed, EgressBlockedError, guardedLookup, type EgressPolicy } from './egress-guard.ts';

/**
 * `interrupted`: this worker shut down (its drain deadline passed) before the endpoint answered.
 * `secret`: never sent, a signing secret of the endpoint cannot be unsealed (set by the dispatcher).
 */
export type ErrorKind = 'timeout' | 'dns' | 'connect' | 'tls' | 'http' | 'blocked' | 'interrupted' | 'secret';
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
  // URLs whose host needs no check before sending (a name, checked at connect) or passed it (an
  // address literal): the policy is fixed for the sender's life, so a URL once passed always passes.
  const checkedUrls = new LRUCache<string, true>({ max: 1000 });

  return {
    async send(url: string, headers: Record<string, string>, body: string, interrupt?: AbortSignal): Promise<SendResult> {
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      // One controller and one timer per send: AbortSignal.timeout and AbortSignal.any cost several
      // times as much (a weakly held timer and a signal graph per request).
      const controller = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, options.timeoutMs);
      const onInterrupt = () => controller.abort();
      interrupt?.addEventListener('abort', onInterrupt, { once: true });
      try {
        if (interrupt?.aborted) controller.abort();
        if (!checkedUrls.has(url)) {
          const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
          if (net.isIP(host)) assertAddressAllowed(options.policy, host);
          checkedUrls.set(url, true);
        }
        const response = await request(url, { method: 'POST', headers, body, dispatcher: agent, signal: controller.signal });
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
          : timedOut
            ? { errorKind: 'timeout' as const, errorMessage: 'timed out' }
            : classify(error);
        return { statusCode: null, durationMs: elapsed(), responseExcerpt: null, retryAfterSeconds: null, ...kind };
      } finally {
        clearTimeout(timer);
        interrupt?.removeEventListener('abort', onInterrupt);
      }
    },
    close: () => agent.close(),
  };
}

export type HttpSender = ReturnType<typeof httpSender>;

/**
 * The first `EXCERPT_BYTES` of a response body as text (invalid UTF-8 and NUL characters, which
 * PostgreSQL text cannot hold, become U+FFFD; a character cut at the end is dropped); the rest is
 * not read. Listens for data events rather than iterating: an async iterator costs a promise per
 * chunk.
 */
function readExcerpt(body: Dispatcher.ResponseData['body']): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      body.off('data', onData);
      resolve(
        Buffer.concat(chunks, Math.min(size, EXCERPT_BYTES))
          .toString('utf8')
          .replace(/\uFFFD+$/, '')
          .replaceAll('\u0000', '\uFFFD'),
      );
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= EXCERPT_BYTES) {
        body.destroy();
        done();
      }
    };
    body.on('data', onData);
    body.once('end', done);
    body.once('error', (error) => (size >= EXCERPT_BYTES ? undefined : reject(error)));
  });
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
