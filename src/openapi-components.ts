import { z } from 'zod';
import * as accreditation from './identity/accreditation/accreditation.schemas.ts';
import * as auth from './identity/auth/auth.schemas.ts';
import * as kyc from './identity/kyc/kyc.schemas.ts';
import * as pii from './identity/pii/pii.schemas.ts';
import * as users from './identity/users/users.schemas.ts';
import * as offerings from './issuance/offerings/offerings.schemas.ts';
import * as subscriptions from './issuance/subscriptions/subscriptions.schemas.ts';
import * as endpoints from './notifications/endpoints/endpoints.schemas.ts';
import { errorBodySchema } from './platform/http/errors.ts';

/**
 * Names of the request and response schemas in the OpenAPI document (`#/components/schemas/<Name>`;
 * a request schema is named `<Name>Input`), so generated clients get types such as `Offering`
 * instead of anonymous inline shapes. Registered once, when the app module is imported; schemas a
 * route does not use are left out of the document.
 */
const piiExample = {
  firstName: 'Ada',
  lastName: 'Lovelace',
  address: '1 Market St',
  city: 'San Francisco',
  state: 'CA',
  zip: '94105',
  country: 'USA',
  ssn: '123456789',
  dobMonth: '07',
  dobDay: '14',
  dobYear: '1990',
  email: 'ada@example.com',
  telephone: '+14155550123',
  idType: 'driverLicense',
  idIssuer: 'CA',
  idNumber: 'D1234567',
};
const uuid = '3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70';

/** Request examples that pass the route's own validation (cross-field rules included); tested. */
export const requestExamples: Record<string, unknown> = {
  ExchangeRequest: { token: 'eyJhbGciOiJSUzI1NiIsImtpZCI6ImRlbW8ifQ.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl' },
  RefreshRequest: { refreshToken: 'rt_5Jc0n7dG2Qm8xYvB3kLw' },
  UpdateUserRequest: { onboardingCompleted: true },
  CreatePiiRequest: piiExample,
  UpdatePiiRequest: { city: 'Oakland', zip: '94607' },
  CreateKycRequest: piiExample,
  SubmitAccreditationRequest: { accreditationStatus: 'accredited', accreditationBasis: 'income' },
  AccreditationUploadRequest: {
    documentType: 'income_proof',
    fileName: 'w2-2025.pdf',
    contentType: 'application/pdf',
    fileSizeBytes: 48213,
  },
  AccreditationDocumentUpload: {
    documentType: 'income_proof',
    fileName: 'w2-2025.pdf',
    contentType: 'application/pdf',
    content: 'JVBERi0xLjQK',
  },
  CreateIssuerRequest: { legalName: 'Acme Holdings Inc.' },
  CreateOfferingRequest: {
    issuerId: uuid,
    name: 'Acme Series A',
    exemptionType: 'reg_d_506c',
    currency: 'USD',
    targetAmount: '500000.00',
    maximumAmount: '1000000.00',
    minimumInvestment: '1000.00',
    maximumInvestment: '100000.00',
    deadline: '2027-06-30',
  },
  UpdateOfferingRequest: { deadline: '2027-09-30' },
  CreateSecurityClassRequest: {
    name: 'Series A Preferred',
    category: 'preferred_equity',
    pricePerUnit: '10.00',
    unitsAuthorized: 1_000_000,
  },
  CreateOfferingDocumentRequest: {
    kind: 'ppm',
    title: 'Private placement memorandum',
    contentType: 'application/pdf',
    content: 'JVBERi0xLjQK',
  },
  CreateSubscriptionRequest: {
    securityClassId: uuid,
    unitsSubscribed: 100,
    paymentMethod: 'card',
    accreditationStatus: 'accredited',
    suitabilityConfirmed: true,
    riskAcknowledgmentSigned: true,
  },
  SignSubscriptionRequest: { signerName: 'Ada Lovelace', consent: true },
  CreateCheckoutRequest: {
    successUrl: 'https://app.example.com/invest/done?session_id={CHECKOUT_SESSION_ID}',
    cancelUrl: 'https://app.example.com/invest/cancelled',
  },
  CreateWebhookEndpointRequest: { url: 'https://hooks.example.com/tranche', description: 'Back office', eventTypes: ['*'] },
  UpdateWebhookEndpointRequest: { status: 'disabled' },
  WebhookSubscriptionsRequest: { eventTypes: ['*'] },
  RotateWebhookSecretRequest: { gracePeriodSeconds: 86_400 },
  RecoverWebhookDeliveriesRequest: { since: '2026-01-15T09:30:00Z' },
};

export const named: [z.ZodType, string][] = [
  [errorBodySchema, 'Error'],
  [auth.exchangeBody, 'ExchangeRequest'],
  [auth.refreshBody, 'RefreshRequest'],
  [auth.tokenResponse, 'TokenResponse'],
  [auth.oauthError, 'OAuthError'],
  [auth.jwksResponse, 'Jwks'],
  [users.updateUserBody, 'UpdateUserRequest'],
  [users.userResponse, 'User'],
  [users.deletedResponse, 'Deleted'],
  [pii.createPiiBody, 'CreatePiiRequest'],
  [pii.updatePiiBody, 'UpdatePiiRequest'],
  [pii.piiResponse, 'Pii'],
  [kyc.createKycBody, 'CreateKycRequest'],
  [kyc.kycStatus, 'KycStatus'],
  [kyc.verificationResponse, 'KycVerification'],
  [kyc.effectiveResponse, 'KycEffectiveVerification'],
  [kyc.sanitizedVerification, 'KycVerificationSummary'],
  [kyc.kycSessionResponse, 'KycSession'],
  [accreditation.accreditationBasis, 'AccreditationBasis'],
  [accreditation.documentType, 'AccreditationDocumentType'],
  [accreditation.submitBody, 'SubmitAccreditationRequest'],
  [accreditation.documentRequestBody, 'AccreditationUploadRequest'],
  [accreditation.base64DocumentBody, 'AccreditationDocumentUpload'],
  [accreditation.documentResponse, 'AccreditationDocument'],
  [accreditation.uploadResponse, 'AccreditationUpload'],
  [accreditation.reviewStatus, 'AccreditationReviewStatus'],
  [accreditation.accreditationResponse, 'Accreditation'],
  [accreditation.accreditationSessionResponse, 'AccreditationSession'],
  [offerings.exemptionType, 'ExemptionType'],
  [offerings.offeringStatus, 'OfferingStatus'],
  [offerings.securityCategory, 'SecurityCategory'],
  [offerings.offeringResponse, 'Offering'],
  [offerings.securityResponse, 'SecurityClass'],
  [offerings.documentResponse, 'OfferingDocument'],
  [offerings.createIssuerBody, 'CreateIssuerRequest'],
  [offerings.createOfferingBody, 'CreateOfferingRequest'],
  [offerings.updateOfferingBody, 'UpdateOfferingRequest'],
  [offerings.createSecurityBody, 'CreateSecurityClassRequest'],
  [offerings.createDocumentBody, 'CreateOfferingDocumentRequest'],
  [subscriptions.subscriptionStatus, 'SubscriptionStatus'],
  [subscriptions.createSubscriptionBody, 'CreateSubscriptionRequest'],
  [subscriptions.signBody, 'SignSubscriptionRequest'],
  [subscriptions.subscriptionResponse, 'Subscription'],
  [subscriptions.checkoutBody, 'CreateCheckoutRequest'],
  [subscriptions.checkoutResponse, 'Checkout'],
  [endpoints.createEndpointBody, 'CreateWebhookEndpointRequest'],
  [endpoints.updateEndpointBody, 'UpdateWebhookEndpointRequest'],
  [endpoints.subscriptionsBody, 'WebhookSubscriptionsRequest'],
  [endpoints.rotateBody, 'RotateWebhookSecretRequest'],
  [endpoints.recoverBody, 'RecoverWebhookDeliveriesRequest'],
  [endpoints.endpointResponse, 'WebhookEndpoint'],
  [endpoints.createdEndpointResponse, 'CreatedWebhookEndpoint'],
];

for (const [schema, id] of named) {
  const example = requestExamples[id];
  if (!z.globalRegistry.has(schema)) z.globalRegistry.add(schema, { id, ...(example === undefined ? {} : { examples: [example] }) });
}
