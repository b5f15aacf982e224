import { z } from 'zod';
import { optionalBody } from '../../platform/http/bodies.ts';
import { isKnownEventType } from '../event-catalog.ts';
import { isoDateTime } from '../../platform/http/times.ts';

const eventTypes = z
  .array(z.string().max(100))
  .min(1)
  .max(100)
  .superRefine((types, context) => {
    types.forEach((type, index) => {
      if (!isKnownEventType(type))
        context.addIssue({ code: 'custom', path: [index], message: `unknown event type ${type}; see GET /notifications/event-types` });
    });
  });

export const createEndpointBody = z.strictObject({
  url: z.url().max(2000),
  description: z.string().trim().max(500).optional(),
  eventTypes: eventTypes.default(['*']),
});

export const updateEndpointBody = z
  .strictObject({
    url: z.url().max(2000).optional(),
    description: z.string().trim().max(500).nullable().optional(),
    status: z.enum(['active', 'disabled']).optional(),
  })
  .refine((body) => Object.keys(body).length > 0, { message: 'send at least one field to change' });

export const subscriptionsBody = z.strictObject({ eventTypes });
export const rotateBody = optionalBody(
  z.strictObject({
    gracePeriodSeconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400)
      .optional(),
  }),
);
export const recoverBody = z.strictObject({ since: isoDateTime() });
export const endpointIdParams = z.object({ id: z.uuid() });

export const endpointResponse = z.object({
  id: z.uuid(),
  org_id: z.uuid(),
  url: z.string(),
  description: z.string().nullable(),
  event_types: z.array(z.string()),
  status: z.enum(['active', 'disabled']),
  disabled_reason: z.string().nullable(),
  disabled_at: z.date().nullable(),
  created_at: z.date(),
  updated_at: z.date(),
});

export const createdEndpointResponse = endpointResponse.extend({ signing_secret: z.string() });
