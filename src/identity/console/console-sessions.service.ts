import { constantTimeEqual } from '../../platform/crypto/compare.ts';
import { keyedHash } from '../../platform/crypto/envelope.ts';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import { randomBase62 } from '../../platform/crypto/random.ts';
import { AppError } from '../../platform/http/errors.ts';
import type { Clock } from '../../platform/clock.ts';
import type { OrgsService } from '../orgs/orgs.service.ts';
import type { ConsoleSessionsRepo } from './console-sessions.repo.ts';

/** Who a console session belongs to: platform staff (by admin key) or an org's admin. */
export type ConsoleSession =
  | { id: string; kind: 'platform_admin'; adminKeyId: string; expiresAt: Date }
  | { id: string; kind: 'org_admin'; orgId: string; userId: string; expiresAt: Date };

/** A new sign-in: the cookie's token (shown to nobody else), its CSRF token and the session. */
export type ConsoleSignIn = { token: string; csrfToken: string; session: ConsoleSession };

/** An org admin's sign-in between leaving for the IdP and coming back (at most ten minutes). */
export type OidcFlow = { orgId: string; state: string; nonce: string; codeVerifier: string; expiresAt: number };
export const CONSOLE_OIDC_FLOW_SECONDS = 600;

const TOKEN_PATTERN = /^cs_[0-9A-Za-z]{43}$/;

/**
 * Back-office console sessions. The token (`cs_` + 43 base62 characters, about 256 bits) lives
 * only in the browser's HttpOnly cookie; the database keeps its keyed hash. The CSRF token is a
 * second keyed hash of the same token, so it needs no storage and is useless without the cookie.
 */
export function consoleSessionsService(deps: {
  repo: ConsoleSessionsRepo;
  orgs: Pick<OrgsService, 'authenticateAdminKey'>;
  keyring: Keyring;
  clock: Clock;
  /** How long a session lasts from sign-in, in seconds. */
  ttlSeconds: number;
}) {
  const { repo, keyring, clock } = deps;
  const digest = (token: string) => keyedHash(keyring, 'console-session', token);
  const csrfTokenFor = (token: string) => keyedHash(keyring, 'console-csrf', token);
  const present = (row: Awaited<ReturnType<ConsoleSessionsRepo['insert']>>): ConsoleSession =>
    row.adminKeyId
      ? { id: row.id, kind: 'platform_admin', adminKeyId: row.adminKeyId, expiresAt: row.expiresAt }
      : { id: row.id, kind: 'org_admin', orgId: row.orgId!, userId: row.userId!, expiresAt: row.expiresAt };

  async function open(owner: { adminKeyId: string } | { orgId: string; userId: string }): Promise<ConsoleSignIn> {
    const token = `cs_${randomBase62(43)}`;
    const expiresAt = new Date(clock.now().getTime() + deps.ttlSeconds * 1000);
    const row = await repo.insert({ tokenDigest: digest(token), expiresAt, ...owner });
    return { token, csrfToken: csrfTokenFor(token), session: present(row) };
  }

  return {
    /** Exchanges a platform admin key for a session. Throws UNAUTHORIZED for an unknown or revoked key. */
    async signInWithAdminKey(adminKey: string): Promise<ConsoleSignIn> {
      const admin = await deps.orgs.authenticateAdminKey(adminKey);
      if (!admin) throw new AppError('UNAUTHORIZED', 'Admin key is invalid or revoked');
      return open({ adminKeyId: admin.adminKeyId });
    },

    /** A session for an org_admin whose identity the org's IdP has just vouched for. */
    signInAsOrgAdmin: (orgId: string, userId: string): Promise<ConsoleSignIn> => open({ orgId, userId }),

    /** The live session a cookie's token names, or null (unknown, expired, signed out, key revoked). */
    async resolve(token: string): Promise<ConsoleSession | null> {
      if (!TOKEN_PATTERN.test(token)) return null;
      const row = await repo.findLive(digest(token), clock.now());
      return row ? present(row) : null;
    },

    /** The CSRF token that writes made with this session's cookie must carry. */
    csrfTokenFor,

    /**
     * An org-admin sign-in in flight (state, nonce, PKCE verifier, org), as a tamper-proof cookie
     * value: base64url JSON and its keyed hash. It expires after `CONSOLE_OIDC_FLOW_SECONDS`.
     */
    signFlow(flow: Omit<OidcFlow, 'expiresAt'>): string {
      const body = Buffer.from(JSON.stringify({ ...flow, expiresAt: clock.now().getTime() + CONSOLE_OIDC_FLOW_SECONDS * 1000 })).toString(
        'base64url',
      );
      return `${body}.${keyedHash(keyring, 'console-oidc', body)}`;
    },

    /** The flow a cookie value carries, or null when it was tampered with or has expired. */
    openFlow(value: string): OidcFlow | null {
      const [body, mac] = value.split('.');
      if (!body || !mac || !constantTimeEqual(mac, keyedHash(keyring, 'console-oidc', body))) return null;
      const flow = JSON.parse(Buffer.from(body, 'base64url').toString()) as OidcFlow;
      return flow.expiresAt > clock.now().getTime() ? flow : null;
    },

    /** Ends the session (idempotent). */
    async signOut(token: string): Promise<void> {
      if (TOKEN_PATTERN.test(token)) await repo.revoke(digest(token), clock.now());
    },
  };
}

export type ConsoleSessionsService = ReturnType<typeof consoleSessionsService>;
