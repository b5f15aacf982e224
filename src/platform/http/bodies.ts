import { z } from 'zod';

/**
 * The body of an action route (approve, rotate-secret, ...): optional. Fastify hands validation
 * `null` when a request has no body, with or without `content-type: application/json`, so `null`
 * and absence both mean "no body" and arrive in the handler as `undefined`.
 */
export function optionalBody<T extends z.ZodType>(schema: T) {
  return schema.nullish().transform((body): z.output<T> | undefined => body ?? undefined);
}
