import { z } from 'zod';

export const userIdParams = z.object({ userId: z.uuid() });

export const updateUserBody = z
  .strictObject({ onboardingCompleted: z.boolean().optional(), role: z.enum(['user', 'org_admin']).optional() })
  .refine((body) => Object.keys(body).length > 0, { message: 'send at least one field to change' });

export const userResponse = z.object({
  id: z.uuid(),
  org_id: z.uuid(),
  email: z.string(),
  role: z.enum(['user', 'org_admin']),
  onboarding_completed: z.boolean(),
  created_at: z.date(),
  updated_at: z.date(),
});

export const deletedResponse = z.object({ id: z.uuid(), deleted: z.literal(true) });
