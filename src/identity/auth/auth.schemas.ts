import { z } from 'zod';

export const exchangeBody = z.strictObject({ token: z.string().min(1).max(16_384) });
export const refreshBody = z.strictObject({ refreshToken: z.string().min(1).max(512) });

export const tokenResponse = z.object({
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int(),
  refresh_token: z.string(),
  refresh_expires_in: z.number().int(),
  scope: z.string(),
});

export const oauthError = z.object({ error: z.string(), error_description: z.string() });

export const jwksResponse = z.object({ keys: z.array(z.record(z.string(), z.unknown())) });
