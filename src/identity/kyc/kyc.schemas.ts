import { z } from 'zod';
import { offsetPagingQuery } from '../../platform/http/paging.ts';
import { piiFields } from '../pii/pii.schemas.ts';

/** The KYC request of spec/kyc-and-accreditation.txt: what a vendor needs to check an identity. */
export const createKycBody = z
  .strictObject({
    ...piiFields,
    ssn: piiFields.ssn.optional(),
    ssnLast4: piiFields.ssnLast4.optional(),
    email: piiFields.email.optional(),
    telephone: piiFields.telephone.optional(),
    idType: piiFields.idType.optional(),
    idIssuer: piiFields.idIssuer.optional(),
    idNumber: piiFields.idNumber.optional(),
  })
  .refine((body) => body.ssn !== undefined || body.ssnLast4 !== undefined, {
    message: 'send a 9-digit ssn or a 4-digit ssnLast4',
    path: ['ssn'],
  });

const checkStatus = z.enum(['not_attempted', 'pending', 'passed', 'failed', 'needs_review']);
export const kycStatus = z.enum(['pending', 'action_required', 'needs_review', 'approved', 'rejected', 'expired', 'error']);

export const verificationResponse = z.object({
  verification_id: z.uuid(),
  user_id: z.uuid(),
  org_id: z.uuid(),
  status: kycStatus,
  checks: z.object({ identity: checkStatus, document: checkStatus }),
  required_action: z.object({ type: z.literal('document_scan'), url: z.string() }).nullable(),
  submitted_at: z.date(),
  completed_at: z.date().nullable(),
  created_at: z.date(),
  updated_at: z.date(),
});

export const effectiveResponse = verificationResponse.extend({
  verification_id: z.uuid().nullable(),
  status: z.union([kycStatus, z.literal('not_started')]),
  submitted_at: z.date().nullable(),
  created_at: z.date().nullable(),
  updated_at: z.date().nullable(),
});

/** Org-wide listing: no required-action URL, nothing from the provider. */
export const sanitizedVerification = verificationResponse.omit({ required_action: true });

export const listQuery = offsetPagingQuery.extend({ status: kycStatus.optional() });
export const verificationIdParams = z.object({ id: z.uuid() });
export const sessionIdParams = z.object({ sessionId: z.uuid() });

/** The older kyc-sessions routes: the same records, named as sessions. */
export const kycSessionResponse = z.object({
  session_id: z.uuid(),
  user_id: z.uuid(),
  org_id: z.uuid(),
  status: kycStatus,
  verification_url: z.string().nullable(),
  checks: z.object({ identity: checkStatus, document: checkStatus }),
  created_at: z.date(),
  updated_at: z.date(),
  completed_at: z.date().nullable(),
});
