import { z } from 'zod';

export const exchangeBody = z.strictObject({ token: z.string().min(1).max(16_384) });
export const refreshBody = z.strictObject({ refreshToken: z.string().min(1).max(512) });

/** OAuth 2.0 token response (RFC 6749 §5.1); lifetimes in seconds. */
export const tokenResponse = z.object({
  access_token: z.string().meta({
    description: 'a JWT (RS256) for `Authorization: Bearer`',
    examples: ['eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiIxIn0.c2ln'],
  }),
  token_type: z.literal('Bearer'),
  expires_in: z
    .number()
    .int()
    .positive()
    .meta({ description: 'seconds until the access token expires', examples: [300] }),
  refresh_token: z.string().meta({ description: 'single use: each refresh returns a new one', examples: ['rt_5Jc0n7dG2Qm8xYvB3kLw'] }),
  refresh_expires_in: z
    .number()
    .int()
    .positive()
    .meta({ description: 'seconds until the refresh token expires', examples: [1800] }),
  scope: z.string().meta({ description: "the user's role: `user` or `org_admin`", examples: ['user'] }),
});

export const oauthError = z.object({ error: z.string(), error_description: z.string() });

export const jwksResponse = z.object({ keys: z.array(z.record(z.string(), z.unknown())) });
