/** Every event type an endpoint can subscribe to (`*` subscribes to all), with an example `data`. */
export const eventCatalog: Record<string, { description: string; example: Record<string, unknown> }> = {
  'test.ping': { description: 'Sent by POST /notifications/webhooks/:id/test', example: { webhook_id: '5f0c…', message: 'ping' } },
  'kyc.verification.created': {
    description: 'A KYC verification was created',
    example: { verification_id: 'a1b2c3d4-…', user_id: '70000000-…', status: 'pending' },
  },
  'kyc.verification.action_required': {
    description: 'The user must complete an action, such as a document scan',
    example: { verification_id: 'a1b2c3d4-…', user_id: '70000000-…', status: 'action_required' },
  },
  'kyc.verification.needs_review': {
    description: 'The verification was flagged for manual review',
    example: { verification_id: 'a1b2c3d4-…', user_id: '70000000-…', status: 'needs_review' },
  },
  'kyc.verification.approved': {
    description: 'The identity was verified',
    example: { verification_id: 'a1b2c3d4-…', user_id: '70000000-…', status: 'approved' },
  },
  'kyc.verification.rejected': {
    description: 'The verification failed or was rejected',
    example: { verification_id: 'a1b2c3d4-…', user_id: '70000000-…', status: 'rejected' },
  },
  'kyc.verification.expired': {
    description: 'The verification was not finished before it expired (KYC_VERIFICATION_TTL_HOURS); the user may start again',
    example: { verification_id: 'a1b2c3d4-…', user_id: '70000000-…', status: 'expired' },
  },
  'kyc.verification.error': {
    description:
      'The verification could not be completed (the provider failed, or the submission was interrupted); the user may start again',
    example: { verification_id: 'a1b2c3d4-…', user_id: '70000000-…', status: 'error' },
  },
  'accreditation.submitted': {
    description: 'The user self-certified',
    example: {
      accreditation_id: 'b2c3…',
      user_id: '70000000-…',
      accreditation_status: 'accredited',
      accreditation_basis: 'income',
      review_status: 'pending_review',
    },
  },
  'accreditation.document.uploaded': {
    description: 'A supporting document was uploaded',
    example: { accreditation_id: 'b2c3…', user_id: '70000000-…', document_id: 'd4e5…', document_type: 'income_proof' },
  },
  'accreditation.more_info_needed': {
    description: 'A reviewer asked for more information',
    example: { accreditation_id: 'b2c3…', user_id: '70000000-…', review_status: 'more_info_needed' },
  },
  'accreditation.approved': {
    description: 'The accreditation was approved',
    example: { accreditation_id: 'b2c3…', user_id: '70000000-…', review_status: 'approved' },
  },
  'accreditation.denied': {
    description: 'The accreditation was denied',
    example: { accreditation_id: 'b2c3…', user_id: '70000000-…', review_status: 'denied' },
  },
  'accreditation.expired': {
    description: 'An approved accreditation passed its end date (ACCREDITATION_VALIDITY_DAYS); 506(c) offerings need it verified again',
    example: { accreditation_id: 'b2c3…', user_id: '70000000-…', review_status: 'expired' },
  },
  // `status` is the subscription's status after the event; `amount` a decimal string in `currency`.
  ...Object.fromEntries(
    (
      [
        ['created', 'A subscription was created and units reserved', 'pending_signature'],
        ['agreement_signed', 'The subscription agreement was signed', 'pending_payment'],
        ['payment_initiated', 'A checkout session was created (the data adds `checkout_session_id`)', 'pending_payment'],
        ['funded', 'Payment completed; the subscription awaits review', 'pending_review'],
        ['payment_failed', 'Payment failed (a declined or failed bank debit); the investor may pay again', 'pending_payment'],
        ['approved', 'The subscription was approved', 'approved'],
        ['rejected', 'The subscription was rejected', 'rejected'],
        ['cancelled', 'The subscription was cancelled (by the investor, or its checkout expired)', 'cancelled'],
        ['completed', 'Shares were issued and the subscription completed', 'completed'],
      ] as const
    ).map(([name, description, status]) => [
      `subscription.${name}`,
      {
        description,
        example: {
          subscription_id: 'c3d4…',
          offering_id: 'e5f6…',
          user_id: '70000000-…',
          status,
          amount: '1020.00',
          currency: 'USD',
          ...(name === 'payment_initiated' ? { checkout_session_id: 'cs_test_…' } : {}),
        },
      },
    ]),
  ),
  'share.issued': {
    description: 'Shares were issued to an investor',
    example: { share_id: 'f6a7…', subscription_id: 'c3d4…', units: 100 },
  },
  'offering.opened': { description: 'An offering opened', example: { offering_id: 'e5f6…', status: 'open' } },
  'offering.paused': { description: 'An offering was paused', example: { offering_id: 'e5f6…', status: 'paused' } },
  'offering.closed': { description: 'An offering closed', example: { offering_id: 'e5f6…', status: 'closed' } },
  'webhook.endpoint.disabled': {
    description: 'An endpoint was disabled after failing (410, or 5 days of failures)',
    example: { webhook_id: '5f0c…', reason: 'failing for 5 days' },
  },
};

export const ALL_EVENTS = '*';
export const isKnownEventType = (type: string) => type === ALL_EVENTS || type in eventCatalog;
