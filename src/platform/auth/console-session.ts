import type { FastifyRequest } from 'fastify';
import { constantTimeEqual } from '../crypto/compare.ts';
import { AppError } from '../http/errors.ts';
import { reviewerLabel, type Reviewer } from './principal.ts';

/** The console's session cookie (HttpOnly, SameSite=Strict; `__Host-` and Secure behind https). */
export const CONSOLE_COOKIE = 'tranche_console';
export const CONSOLE_COOKIE_SECURE = '__Host-tranche_console';
/** The header every console write carries: the session's CSRF token. */
export const CSRF_HEADER = 'x-csrf-token';
/** The header a platform admin's console names the org with, on routes an org API key may call. */
export const CONSOLE_ORG_HEADER = 'x-tranche-org';

/** How a console session is checked; identity provides it, the platform only calls it. */
export type ConsoleAuthenticator = {
  /** The reviewer a live session token belongs to, or null; an org admin's comes with their email. */
  resolve(token: string): Promise<(Reviewer & { email?: string }) | null>;
  csrfTokenFor(token: string): string;
  /** The console's own origin (PUBLIC_URL's), which Origin must name on writes. */
  origin: string;
};

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The session token from the request's console cookie, if any. */
export function consoleToken(request: FastifyRequest): string | undefined {
  const cookies = (request as FastifyRequest & { cookies?: Record<string, string | undefined> }).cookies;
  return cookies?.[CONSOLE_COOKIE_SECURE] ?? cookies?.[CONSOLE_COOKIE];
}

/**
 * The reviewer a console cookie authenticates, or undefined when the request carries none. A
 * write (any method but GET, HEAD, OPTIONS) must also carry the session's CSRF token in
 * `X-CSRF-Token` and, when the browser sends Origin, come from the console's own origin (or the
 * host it was reached on): otherwise 403 FORBIDDEN, before anything changes. An unknown or expired
 * session is 401.
 */
export async function consoleReviewer(
  request: FastifyRequest,
  console: ConsoleAuthenticator | undefined,
): Promise<(Reviewer & { email?: string }) | undefined> {
  const token = console && consoleToken(request);
  if (!console || !token) return undefined;
  const reviewer = await console.resolve(token);
  if (!reviewer) throw new AppError('UNAUTHORIZED', 'The console session has expired or was signed out; sign in again');
  if (!SAFE_METHODS.has(request.method)) {
    const origin = request.headers.origin;
    const reachedAt = `${request.protocol}://${request.host}`;
    if (origin !== undefined && origin !== console.origin && origin !== reachedAt)
      throw new AppError('FORBIDDEN', 'Cross-origin write refused: Origin is not the console');
    if (request.headers['sec-fetch-site'] === 'cross-site') throw new AppError('FORBIDDEN', 'Cross-site write refused');
    const sent = request.headers[CSRF_HEADER];
    if (typeof sent !== 'string' || !constantTimeEqual(sent, console.csrfTokenFor(token)))
      throw new AppError('FORBIDDEN', `A console write needs the session's ${CSRF_HEADER} header`);
    // Who did what and when, for every console write (the services also record the reviewer on the records they change).
    request.log.info(
      { consoleActor: reviewerLabel(reviewer), action: `${request.method} ${request.routeOptions.url ?? request.url}` },
      'console action',
    );
  }
  return reviewer;
}
