import { z } from 'zod';
import { MAX_UPLOAD_BYTES } from '../../platform/storage/storage.ts';

export const accreditationBasis = z.enum(['income', 'net_worth', 'license_7_65_82', 'entity', 'not_accredited']);
export const documentType = z.enum(['income_proof', 'net_worth_proof', 'license_proof', 'entity_proof']);
export const uploadContentType = z.enum(['application/pdf', 'image/jpeg', 'image/png']);

export const submitBody = z.strictObject({
  accreditationStatus: z.enum(['accredited', 'non_accredited']),
  accreditationBasis: accreditationBasis,
});

const fileName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^/\\\0]+$/, 'must be a file name without slashes')
  .refine((name) => !/^\.+$/.test(name), 'must be a file name, not . or ..');

export const documentRequestBody = z.strictObject({
  documentType,
  fileName,
  contentType: uploadContentType,
  fileSizeBytes: z.number().int().min(1).max(MAX_UPLOAD_BYTES, 'must be at most 10 MB (10485760 bytes)'),
});

export const base64DocumentBody = z.strictObject({
  documentType,
  fileName,
  contentType: uploadContentType,
  content: z.base64('must be base64').min(1),
});

export const documentResponse = z.object({
  id: z.uuid(),
  accreditation_id: z.uuid(),
  document_type: documentType,
  file_name: z.string(),
  content_type: z.string(),
  file_size_bytes: z.number(),
  /** SHA-256 (hex) of the accepted file, once uploaded; the reviewer's download serves exactly these bytes. */
  sha256: z.string().nullable(),
  status: z.enum(['upload_pending', 'uploaded', 'upload_failed']),
  uploaded_at: z.date().nullable(),
  created_at: z.date(),
});

export const uploadResponse = documentResponse.extend({
  upload: z.object({ method: z.literal('PUT'), url: z.string(), headers: z.record(z.string(), z.string()), expires_at: z.date() }),
});

export const reviewStatus = z.enum(['not_required', 'pending_review', 'under_review', 'more_info_needed', 'approved', 'denied', 'expired']);

export const accreditationResponse = z.object({
  id: z.uuid(),
  user_id: z.uuid(),
  org_id: z.uuid(),
  accreditation_status: z.enum(['pending', 'accredited', 'non_accredited', 'qualified_purchaser', 'qualified_client', 'expired']),
  accreditation_basis: accreditationBasis.nullable(),
  review_status: reviewStatus,
  verified: z.boolean(),
  review_reason: z.string().nullable(),
  submitted_at: z.date().nullable(),
  reviewed_at: z.date().nullable(),
  expires_at: z.date().nullable(),
  documents: z.array(documentResponse),
  created_at: z.date(),
  updated_at: z.date(),
});

export const documentIdParams = z.object({ id: z.uuid() });
export const sessionIdParams = z.object({ sessionId: z.uuid() });

/** The older accreditation-sessions routes: the single record, named as a session. */
export const accreditationSessionResponse = accreditationResponse.omit({ id: true }).extend({ session_id: z.uuid() });
