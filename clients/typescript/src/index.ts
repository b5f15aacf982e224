/**
 * The Tranche API client: typed calls generated from the server's OpenAPI document (openapi-fetch
 * over the types in `schema.ts`), plus what an integrator otherwise writes by hand: exchanging an
 * ID token and refreshing the session, verifying a webhook (Standard Webhooks), and signing
 * key-server requests strictly (`(request-target)`, `date` and `digest`).
 *
 * Runs on Node.js 20+ and in browsers: it uses only `fetch` and Web Crypto.
 */
import createFetchClient, { type Client, type Middleware } from 'openapi-fetch';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import type { components, operations, paths } from './schema.ts';

export type { components, operations, paths };
/** What `verifyWebhook` throws for a delivery that does not verify. */
export { WebhookVerificationError };

/** A typed client: `client.GET('/issuance/offerings', { params: { query: { page: 1 } } })` and so on. */
export type TrancheClient = Client<paths>;

/** How the client authenticates. Give what the calls you make need; each is sent on every call. */
export type TrancheClientOptions = {
  /** The server's origin, e.g. `https://api.example.com` (no trailing path). */
  baseUrl: string;
  /** The org's API key (`X-API-Key`): server-to-server calls of the org. */
  apiKey?: string;
  /** A platform admin key (`X-Admin-Key`): the back office. */
  adminKey?: string;
  /** A user's session (`Authorization: Bearer`), refreshed as it runs out; see `exchangeToken`. */
  session?: TokenSession;
  /** Signs every call strictly for the key server; see `keyServerSigning`. */
  signer?: RequestSigner;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
};

/** A typed client for the whole API (Identity, Notifications, Issuance, admin and the key server). */
export function createTrancheClient(options: TrancheClientOptions): TrancheClient {
  const client = createFetchClient<paths>({ baseUrl: options.baseUrl, ...(options.fetch ? { fetch: options.fetch } : {}) });
  const { apiKey, adminKey } = options;
  if (apiKey || adminKey) {
    client.use({
      onRequest({ request }) {
        if (apiKey) request.headers.set('x-api-key', apiKey);
        if (adminKey) request.headers.set('x-admin-key', adminKey);
        return request;
      },
    });
  }
  if (options.session) client.use(options.session.middleware);
  if (options.signer) client.use(keyServerSigning(options.signer));
  return client;
}

/** Errors the helpers throw: the HTTP status and the server's error body, as received. */
export class TrancheError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(message);
    this.name = 'TrancheError';
  }
}

/** The tokens of a session. Times are milliseconds since the epoch. */
export type Tokens = {
  accessToken: string;
  refreshToken: string;
  /** When the access token runs out. */
  accessExpiresAt: number;
  /** When the refresh token runs out; after it, exchange a new ID token. */
  refreshExpiresAt: number;
};

type TokenResponse = components['schemas']['TokenResponse'];

function tokensFrom(body: TokenResponse, now: number): Tokens {
  return {
    accessToken: body.access_token,
    refreshToken: body.refresh_token,
    accessExpiresAt: now + body.expires_in * 1000,
    refreshExpiresAt: now + body.refresh_expires_in * 1000,
  };
}

async function postTokens(fetchImpl: typeof fetch, url: string, headers: Record<string, string>, body: unknown): Promise<TokenResponse> {
  const response = await fetchImpl(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const parsed: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const error = parsed as { error_description?: string; error?: { message?: string } } | null;
    const message = error?.error_description ?? error?.error?.message ?? `HTTP ${response.status}`;
    throw new TrancheError(`token request failed: ${message}`, response.status, parsed);
  }
  return parsed as TokenResponse;
}

/** A user's session: hands out a current access token, refreshing it (once, for all callers) as it runs out. */
export type TokenSession = {
  /** A valid access token, refreshed first when it runs out within `refreshLeewaySeconds`. */
  accessToken(): Promise<string>;
  /** Refreshes now. The refresh token rotates: the old one stops working. */
  refresh(): Promise<Tokens>;
  /** The current tokens (store them to resume the session later with `tokenSession`). */
  tokens(): Tokens;
  /** openapi-fetch middleware: adds the bearer token, and on a 401 refreshes once and retries. */
  middleware: Middleware;
};

/** Options of a session. */
export type TokenSessionOptions = {
  baseUrl: string;
  tokens: Tokens;
  /** Refresh this many seconds before the access token runs out (default 30). */
  refreshLeewaySeconds?: number;
  /** Called with the new tokens after every refresh (e.g. to store them). */
  onTokens?: (tokens: Tokens) => void;
  fetch?: typeof fetch;
};

/**
 * A session over tokens you hold. Refresh tokens rotate, so concurrent callers share one refresh
 * rather than each spending the token (a second use of a spent refresh token ends the session).
 */
export function tokenSession(options: TokenSessionOptions): TokenSession {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const leewayMs = (options.refreshLeewaySeconds ?? 30) * 1000;
  let current = options.tokens;
  let inFlight: Promise<Tokens> | undefined;
  const retried = new WeakSet<Request>();
  const pending = new WeakMap<Request, Request>();

  function refresh(): Promise<Tokens> {
    inFlight ??= (async () => {
      try {
        const body = await postTokens(fetchImpl, `${options.baseUrl}/identity/auth/refresh`, {}, { refreshToken: current.refreshToken });
        current = tokensFrom(body, Date.now());
        options.onTokens?.(current);
        return current;
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  }

  async function accessToken(): Promise<string> {
    if (inFlight) return (await inFlight).accessToken;
    if (Date.now() >= current.accessExpiresAt - leewayMs) return (await refresh()).accessToken;
    return current.accessToken;
  }

  const middleware: Middleware = {
    async onRequest({ request }) {
      request.headers.set('authorization', `Bearer ${await accessToken()}`);
      // Kept to send again after a refresh: a body can be read only once.
      pending.set(request, request.clone());
      return request;
    },
    async onResponse({ request, response }) {
      const copy = pending.get(request);
      pending.delete(request);
      if (response.status !== 401 || !copy || retried.has(request)) return response;
      const used = request.headers.get('authorization');
      // Another call may have refreshed meanwhile; refresh only if the token we sent is still current.
      const token = used === `Bearer ${current.accessToken}` ? (await refresh()).accessToken : await accessToken();
      copy.headers.set('authorization', `Bearer ${token}`);
      retried.add(copy);
      return fetchImpl(copy);
    },
  };

  return { accessToken, refresh, tokens: () => current, middleware };
}

/**
 * Exchanges an integrator's OIDC ID token and the org's API key for a Tranche session
 * (`POST /identity/auth/exchange`). Throws `TrancheError` (401 for a bad token or key).
 */
export async function exchangeToken(options: {
  baseUrl: string;
  apiKey: string;
  idToken: string;
  refreshLeewaySeconds?: number;
  onTokens?: (tokens: Tokens) => void;
  fetch?: typeof fetch;
}): Promise<TokenSession> {
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const body = await postTokens(
    fetchImpl,
    `${options.baseUrl}/identity/auth/exchange`,
    { 'x-api-key': options.apiKey },
    { token: options.idToken },
  );
  const tokens = tokensFrom(body, Date.now());
  options.onTokens?.(tokens);
  return tokenSession({ ...options, tokens });
}

/** A webhook event as Tranche sends it (see the event catalog in docs/webhooks.md). */
export type WebhookEvent<T = Record<string, unknown>> = {
  id: string;
  type: string;
  created_at: string;
  org_id?: string;
  data: T;
};

/**
 * Verifies a received webhook (Standard Webhooks: HMAC-SHA256 over `id.timestamp.body`, a
 * timestamp within 5 minutes) and returns its event. `secret` is the endpoint's `whsec_...`
 * secret; `body` the raw bytes received, before any JSON parsing; during a rotation either secret
 * verifies. Throws `WebhookVerificationError` (re-exported here) when it doesn't verify, and
 * `TypeError` when `secret` is not a string.
 */
export function verifyWebhook<T = Record<string, unknown>>(
  secret: string,
  body: string | Uint8Array,
  headers: Headers | Record<string, string | string[] | undefined>,
): WebhookEvent<T> {
  if (typeof secret !== 'string' || secret.length === 0)
    throw new TypeError("verifyWebhook: the secret must be the endpoint's whsec_... string");
  const flat: Record<string, string> = {};
  const read = (name: string) => {
    if (headers instanceof Headers) return headers.get(name) ?? undefined;
    const value = headers[name] ?? headers[name.toLowerCase()];
    return Array.isArray(value) ? value.join(' ') : value;
  };
  for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
    const value = read(name);
    if (value !== undefined) flat[name] = value;
  }
  const text = typeof body === 'string' ? body : new TextDecoder().decode(body);
  return new Webhook(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret).verify(text, flat) as WebhookEvent<T>;
}

/** What signs key-server requests: a TokenD account id (`G...`) and its Ed25519 sign function (e.g. a Stellar Keypair's). */
export type RequestSigner = { accountId: string; sign(data: Uint8Array): Uint8Array | Promise<Uint8Array> };

const toBase64 = (bytes: Uint8Array) => btoa(Array.from(bytes, (byte) => String.fromCharCode(byte)).join(''));
// A copy backed by a plain ArrayBuffer: what `BufferSource` accepts under the DOM types too.
const sha256 = async (data: Uint8Array) => new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', data.slice()));

/**
 * Headers that sign a key-server request strictly: `(request-target)`, `date` and `digest` (the
 * SHA-256 of the exact body sent), as the server's strict mode (KEYSERVER_STRICT_SIGNATURES)
 * requires of every write. Send the body byte for byte as given. A signature is good within the
 * server's clock skew (default ±5 minutes) and, in strict mode, once. The official
 * `@tokend/js-sdk` signs `(request-target)` only, which the server accepts unless strict mode is on.
 */
export async function strictSignatureHeaders(
  signer: RequestSigner,
  request: { method: string; target: string; body?: string },
  now: Date = new Date(),
): Promise<Record<string, string>> {
  const encoder = new TextEncoder();
  const date = now.toUTCString();
  const digest = `SHA-256=${toBase64(await sha256(encoder.encode(request.body ?? '')))}`;
  const signingString = [`(request-target): ${request.method.toLowerCase()} ${request.target}`, `date: ${date}`, `digest: ${digest}`].join(
    '\n',
  );
  const signature = toBase64(await signer.sign(await sha256(encoder.encode(signingString))));
  return {
    date,
    digest,
    signature: `keyId="${signer.accountId}",algorithm="ed25519-sha256",headers="(request-target) date digest",signature="${signature}"`,
  };
}

/** openapi-fetch middleware that signs every request strictly with `signer` (see `strictSignatureHeaders`). */
export function keyServerSigning(signer: RequestSigner): Middleware {
  return {
    async onRequest({ request }) {
      const url = new URL(request.url);
      const body = request.body ? await request.clone().text() : undefined;
      const headers = await strictSignatureHeaders(signer, { method: request.method, target: `${url.pathname}${url.search}`, body });
      for (const [name, value] of Object.entries(headers)) request.headers.set(name, value);
      return request;
    },
  };
}
