import type { PiiRecord } from '../pii/pii.schemas.ts';

export type CheckStatus = 'not_attempted' | 'pending' | 'passed' | 'failed' | 'needs_review';
export type ProviderStatus = 'pending' | 'action_required' | 'needs_review' | 'approved' | 'rejected' | 'error';

/** A vendor's answer, already mapped to our vendor-neutral vocabulary. */
export type ProviderOutcome = {
  status: ProviderStatus;
  checks: { identity: CheckStatus; document: CheckStatus };
  requiredAction: { type: 'document_scan'; url: string } | null;
};

export type ProviderCallback = { reference: string; outcome: ProviderOutcome };

/**
 * A KYC vendor behind a small interface. Raw vendor payloads stop here: only `ProviderOutcome`
 * reaches our records and responses.
 */
export type KycProvider = {
  name: string;
  submit(submission: { verificationId: string; pii: PiiRecord }): Promise<{ reference: string; outcome: ProviderOutcome }>;
  fetchResult(reference: string): Promise<ProviderOutcome>;
  /** Verifies and decodes a callback the vendor sent to our callback route; throws if forged. */
  parseCallback(headers: Record<string, string | string[] | undefined>, rawBody: Buffer): ProviderCallback;
};
