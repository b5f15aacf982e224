import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from '../../clients/typescript/src/schema.ts';

export type { components, paths };

/** The signed-in console session, as `GET /admin/console/session` returns it. */
export type Session = { kind: 'platform_admin' | 'org_admin'; org_id: string | null; user_id: string | null; csrf_token: string };

/**
 * What the console sends with each call besides the HttpOnly cookie: the CSRF token on writes and,
 * for platform staff on org-level routes, the org they are working in. Kept in memory only.
 */
const context: { csrfToken?: string; orgId?: string } = {};
export const setCsrfToken = (token: string | undefined) => (context.csrfToken = token);
export const setWorkingOrg = (orgId: string | undefined) => (context.orgId = orgId);

const consoleHeaders: Middleware = {
  onRequest({ request }) {
    if (request.method !== 'GET' && context.csrfToken) request.headers.set('x-csrf-token', context.csrfToken);
    if (context.orgId) request.headers.set('x-tranche-org', context.orgId);
    return request;
  },
};

/** The typed API client (types generated from the server's OpenAPI document); same origin, cookie credentials. */
export const api = createClient<paths>({ baseUrl: window.location.origin, credentials: 'same-origin' });
api.use(consoleHeaders);

/** An API error with the server's code and message. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

/** The `data` of a successful envelope; throws `ApiError` with the server's message otherwise. */
export async function unwrap<T>(call: Promise<{ data?: { data: T }; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (data !== undefined) return data.data;
  const body = error as { error?: { message?: string; code?: string } } | undefined;
  throw new ApiError(body?.error?.message ?? `Request failed (${response.status})`, response.status, body?.error?.code ?? 'UNKNOWN');
}
