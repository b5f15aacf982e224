// Generated from openapi.json by `npm run openapi` (openapi-typescript). Do not edit.

export interface paths {
    "/health/live": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Liveness: the process is running */
        get: operations["getHealthLive"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/health/ready": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Readiness: the database answers and migrations are current */
        get: operations["getHealthReady"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Service info */
        get: operations["getIdentity"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/health": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Health check */
        get: operations["getIdentityHealth"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/auth/exchange": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Exchange an IdP ID token for Tranche access and refresh tokens */
        post: operations["postIdentityAuthExchange"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/auth/refresh": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Rotate a refresh token for a new access token */
        post: operations["postIdentityAuthRefresh"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/.well-known/jwks.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Public keys that sign Tranche access tokens */
        get: operations["getIdentityWellKnownJwksJson"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/users/{userId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get a user */
        get: operations["getIdentityUsersByUserId"];
        put?: never;
        post?: never;
        /** Delete a user, their PII and their sessions */
        delete: operations["deleteIdentityUsersByUserId"];
        options?: never;
        head?: never;
        /** Update a user (role changes need org_admin) */
        patch: operations["patchIdentityUsersByUserId"];
        trace?: never;
    };
    "/identity/user-pii": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Create the encrypted PII record of the caller (or, for an org_admin, of `userId`) */
        post: operations["postIdentityUserPii"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/user-pii/{userId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get decrypted PII, SSN masked */
        get: operations["getIdentityUserPiiByUserId"];
        put?: never;
        post?: never;
        /** Delete the PII record */
        delete: operations["deleteIdentityUserPiiByUserId"];
        options?: never;
        head?: never;
        /** Update PII fields */
        patch: operations["patchIdentityUserPiiByUserId"];
        trace?: never;
    };
    "/identity/kyc-verifications": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * org_admin: the org's verifications, sanitized
         * @description Newest first. `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getIdentityKycVerifications"];
        put?: never;
        /** Submit PII (upserted, encrypted) and start a KYC verification */
        post: operations["postIdentityKycVerifications"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/kyc-verifications/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get a KYC verification */
        get: operations["getIdentityKycVerificationsById"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/kyc": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The caller's effective KYC status (not_started if none) */
        get: operations["getIdentityKyc"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/kyc-sessions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Create a KYC session (older API; a KYC verification) */
        post: operations["postIdentityKycSessions"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/kyc-sessions/user": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The caller's KYC sessions (older API), newest first
         * @description `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getIdentityKycSessionsUser"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/kyc-sessions/{sessionId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A KYC session (older API) */
        get: operations["getIdentityKycSessionsBySessionId"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/accreditations": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The caller's accreditation (created pending on first call) */
        get: operations["getIdentityAccreditations"];
        /** Self-certify */
        put: operations["putIdentityAccreditations"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/accreditations/documents": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Request a presigned upload URL for a supporting document */
        post: operations["postIdentityAccreditationsDocuments"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/accreditations/documents/{id}/upload": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Finalize an upload (HEAD-checks the object) */
        post: operations["postIdentityAccreditationsDocumentsByIdUpload"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/accreditation-sessions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Create an accreditation session (older API; self-certification) */
        post: operations["postIdentityAccreditationSessions"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/accreditation-sessions/user": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The caller's accreditation sessions (older API): the one record per user and org */
        get: operations["getIdentityAccreditationSessionsUser"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/accreditation-sessions/{sessionId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** An accreditation session (older API) */
        get: operations["getIdentityAccreditationSessionsBySessionId"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/accreditation-sessions/{sessionId}/documents": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Upload a supporting document as base64 (older API) */
        post: operations["postIdentityAccreditationSessionsBySessionIdDocuments"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/notifications": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Service info */
        get: operations["getNotifications"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/notifications/health": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Health check */
        get: operations["getNotificationsHealth"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/notifications/webhooks": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List webhook endpoints
         * @description Newest first. `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getNotificationsWebhooks"];
        put?: never;
        /** Create a webhook endpoint (the signing secret is shown once) */
        post: operations["postNotificationsWebhooks"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/notifications/webhooks/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get a webhook endpoint */
        get: operations["getNotificationsWebhooksById"];
        put?: never;
        post?: never;
        /** Delete a webhook endpoint */
        delete: operations["deleteNotificationsWebhooksById"];
        options?: never;
        head?: never;
        /** Update a webhook endpoint (status: active re-enables it) */
        patch: operations["patchNotificationsWebhooksById"];
        trace?: never;
    };
    "/notifications/webhooks/{id}/rotate-secret": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Rotate the signing secret; the old one keeps signing for the grace period (default 24 h) */
        post: operations["postNotificationsWebhooksByIdRotateSecret"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/notifications/webhooks/{id}/test": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Send a test.ping delivery */
        post: operations["postNotificationsWebhooksByIdTest"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/notifications/webhooks/{id}/subscriptions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get the event types */
        get: operations["getNotificationsWebhooksByIdSubscriptions"];
        /** Set the event types (`*` for all) */
        put: operations["putNotificationsWebhooksByIdSubscriptions"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/notifications/webhooks/{id}/recover": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Re-send failed deliveries since a time (at most 14 days back) */
        post: operations["postNotificationsWebhooksByIdRecover"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/notifications/event-types": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Event types with a description and an example payload */
        get: operations["getNotificationsEventTypes"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/notifications/deliveries": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List deliveries (filter by endpoint, event type, status, time range)
         * @description Newest first. Page with `cursor` (the `next_cursor` of the previous page: cost does not grow with depth, and new deliveries do not shift pages) or with `offset`. `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getNotificationsDeliveries"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/notifications/deliveries/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A delivery with every attempt */
        get: operations["getNotificationsDeliveriesById"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/notifications/deliveries/{id}/retry": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** A manual attempt now (the retry schedule is not restarted) */
        post: operations["postNotificationsDeliveriesByIdRetry"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Service info */
        get: operations["getIssuance"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/health": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Health check */
        get: operations["getIssuanceHealth"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/offerings": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List offerings (status active = open)
         * @description `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getIssuanceOfferings"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/offerings/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get an offering */
        get: operations["getIssuanceOfferingsById"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/offerings/{id}/documents": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Offering documents with short-lived download links
         * @description `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getIssuanceOfferingsByIdDocuments"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/offerings/{id}/securities": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Security classes of an offering
         * @description `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getIssuanceOfferingsByIdSecurities"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/securities": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List security classes
         * @description `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getIssuanceSecurities"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/securities/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get a security class */
        get: operations["getIssuanceSecuritiesById"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/offerings/{offeringId}/subscriptions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Subscribe: eligibility is checked live and units are reserved */
        post: operations["postIssuanceOfferingsByOfferingIdSubscriptions"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/subscriptions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The caller's subscriptions
         * @description Newest first. `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getIssuanceSubscriptions"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/subscriptions/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get a subscription */
        get: operations["getIssuanceSubscriptionsById"];
        put?: never;
        post?: never;
        /** Cancel (refunds any payment) */
        delete: operations["deleteIssuanceSubscriptionsById"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/subscriptions/{id}/sign-agreement": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Sign the subscription agreement (evidence recorded) */
        post: operations["postIssuanceSubscriptionsByIdSignAgreement"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/subscriptions/{id}/create-checkout-session": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Create a Stripe Checkout Session for units × price
         * @description The body is optional. `successUrl` / `cancelUrl` say where the browser goes after paying or cancelling: absolute https URLs (http only in development mode), on one of the org's allowed redirect origins or of CHECKOUT_RETURN_ORIGINS when any are set; Stripe's `{CHECKOUT_SESSION_ID}` placeholder is kept. Without them, our hosted confirmation pages, which need no token. An open session is returned again when asked with the same return URLs; with others it is expired and replaced.
         */
        post: operations["postIssuanceSubscriptionsByIdCreateCheckoutSession"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/payments/stripe/webhook": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Stripe webhook (Stripe-Signature over the raw body) */
        post: operations["postIssuancePaymentsStripeWebhook"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/shares": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The caller's shares
         * @description Newest first. `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getIssuanceShares"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/issuance/shares/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A share ledger entry */
        get: operations["getIssuanceSharesById"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/kyc-verifications": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * KYC review queue (default status needs_review)
         * @description Newest first; page with `cursor` (the `next_cursor` of the previous page) or `offset`. `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getAdminKycVerifications"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/kyc-verifications/{id}/approve": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Approve a KYC verification in needs_review */
        post: operations["postAdminKycVerificationsByIdApprove"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/kyc-verifications/{id}/reject": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Reject a KYC verification in needs_review */
        post: operations["postAdminKycVerificationsByIdReject"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/accreditations": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Accreditation review queue (default review_status pending_review)
         * @description Oldest submission first; page with `cursor` (the `next_cursor` of the previous page) or `offset`. `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getAdminAccreditations"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/accreditations/documents/{id}/download": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A five-minute download link for a supporting document */
        get: operations["getAdminAccreditationsDocumentsByIdDownload"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/accreditations/{id}/start-review": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Accreditation review: start-review */
        post: operations["postAdminAccreditationsByIdStartReview"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/accreditations/{id}/request-info": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Accreditation review: request-info */
        post: operations["postAdminAccreditationsByIdRequestInfo"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/accreditations/{id}/approve": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Accreditation review: approve */
        post: operations["postAdminAccreditationsByIdApprove"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/accreditations/{id}/deny": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Accreditation review: deny */
        post: operations["postAdminAccreditationsByIdDeny"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/issuers": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Create an issuer */
        post: operations["postAdminIssuers"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/offerings": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Offerings of every status, drafts included (an org admin: their org), newest first
         * @description `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getAdminOfferings"];
        put?: never;
        /** Create an offering (draft) */
        post: operations["postAdminOfferings"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/offerings/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        /** Update an offering */
        patch: operations["patchAdminOfferingsById"];
        trace?: never;
    };
    "/admin/offerings/{id}/open": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** open an offering */
        post: operations["postAdminOfferingsByIdOpen"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/offerings/{id}/pause": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** pause an offering */
        post: operations["postAdminOfferingsByIdPause"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/offerings/{id}/close": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** close an offering */
        post: operations["postAdminOfferingsByIdClose"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/offerings/{id}/securities": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Add a security class */
        post: operations["postAdminOfferingsByIdSecurities"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/offerings/{id}/documents": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Add a document (base64); each upload of a kind is a new version */
        post: operations["postAdminOfferingsByIdDocuments"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/subscriptions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Subscriptions by status (default pending_review)
         * @description Newest first; page with `page`, or with `cursor` (the `next_cursor` of the previous page: the cost does not grow with depth, and new subscriptions do not shift pages). `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getAdminSubscriptions"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/subscriptions/{id}/timeline": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A subscription's status changes: from, to, who (actor), why, when; oldest first */
        get: operations["getAdminSubscriptionsByIdTimeline"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/subscriptions/{id}/approve": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Approve: issues the shares and completes the subscription */
        post: operations["postAdminSubscriptionsByIdApprove"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/subscriptions/{id}/reject": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Reject (refunds the payment) */
        post: operations["postAdminSubscriptionsByIdReject"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Audit log entries, newest first, filtered by subject, actor, action and time
         * @description `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getAdminAudit"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/audit/subjects/{type}/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A subject's timeline: its entries and those naming it as related, oldest first (e.g. a subscription from creation to shares) */
        get: operations["getAdminAuditSubjectsByTypeById"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/audit/verify": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Walks the audit chains (an org_admin: their org’s) and reports the first broken link of each */
        get: operations["getAdminAuditVerify"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Audit log entries, newest first, filtered by subject, actor, action and time
         * @description `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getIdentityAudit"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/audit/subjects/{type}/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A subject's timeline: its entries and those naming it as related, oldest first (e.g. a subscription from creation to shares) */
        get: operations["getIdentityAuditSubjectsByTypeById"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identity/audit/verify": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Walks the audit chains (an org_admin: their org’s) and reports the first broken link of each */
        get: operations["getIdentityAuditVerify"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/shares/{id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Correct the share ledger: cancel an entry with a reason and, optionally, re-issue it (corrected units) */
        post: operations["postAdminSharesByIdCancel"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/issuers/{id}/ocf": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The issuer's cap table as Open Cap Format files in a zip (application/zip), each validated against the OCF schemas
         * @description Manifest, stakeholders, stock classes, stock legend templates and transactions (issuances, cancellations, re-issuances). The issuer object needs a formation date and country: stored with the issuer, or given here.
         */
        get: operations["getAdminIssuersByIdOcf"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/mail": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The mail outbox, newest first: mail kept (SMTP_URL unset), pending, sent or failed
         * @description `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getAdminMail"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/shares": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The share ledger (every holder), newest first; filter by offering, investor, restriction, status
         * @description `total` is the number of matching items, counted up to 1 000: past that it is 1 000 and `total_capped` is true, so a count costs the same however many match.
         */
        get: operations["getAdminShares"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/console/session": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The console session's owner and CSRF token */
        get: operations["getAdminConsoleSession"];
        put?: never;
        /** Sign in to the console with a platform admin key (sets the session cookie) */
        post: operations["postAdminConsoleSession"];
        /** Sign out (ends the session, clears the cookie) */
        delete: operations["deleteAdminConsoleSession"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/orgs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Every org (platform staff); an org admin sees their own */
        get: operations["getAdminOrgs"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/orgs/{id}/api-keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** An org's API keys (hints only, revoked ones too) */
        get: operations["getAdminOrgsByIdApiKeys"];
        put?: never;
        /** Create an API key for an org: the key is in this answer only */
        post: operations["postAdminOrgsByIdApiKeys"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/admin/orgs/{id}/api-keys/{keyId}/revoke": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Revoke one of an org's API keys (at once) */
        post: operations["postAdminOrgsByIdApiKeysByKeyIdRevoke"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Network details (passphrase, master account) */
        get: operations["getRoot"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v3/key_values/{key}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A system key-value (signer roles) */
        get: operations["getV3KeyValuesByKey"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v3/accounts/{address}/signers": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** An account's signers */
        get: operations["getV3AccountsByAddressSigners"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/accounts/{address}/signers": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** An account's signers */
        get: operations["getAccountsByAddressSigners"];
        put?: never;
        /** Add a signer to an account (admin) */
        post: operations["postAccountsByAddressSigners"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/accounts": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Create an account with signers */
        post: operations["postAccounts"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/kdf": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** KDF parameters (default or for an email) */
        get: operations["getKdf"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/wallets/kdf": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** KDF parameters (default or for an email) */
        get: operations["getWalletsKdf"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/wallets": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List wallets (admin) */
        get: operations["getWallets"];
        put?: never;
        /** Create a wallet (and its account with signers) */
        post: operations["postWallets"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/wallets/{walletId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get a wallet (login): opens a session */
        get: operations["getWalletsByWalletId"];
        /** Change password, recover with the recovery seed, or KYC recovery */
        put: operations["putWalletsByWalletId"];
        post?: never;
        /** Delete a wallet (admin) */
        delete: operations["deleteWalletsByWalletId"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/wallets/{walletId}/verification": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Confirm the email with the token from the link */
        put: operations["putWalletsByWalletIdVerification"];
        /** Send the verification email again */
        post: operations["postWalletsByWalletIdVerification"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/sessions/{sessionId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get and extend a session */
        get: operations["getSessionsBySessionId"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/wallets/{walletId}/factors": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A wallet's second factors */
        get: operations["getWalletsByWalletIdFactors"];
        put?: never;
        /** Create a (disabled) TOTP factor */
        post: operations["postWalletsByWalletIdFactors"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/wallets/{walletId}/factors/{factorId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Delete a factor */
        delete: operations["deleteWalletsByWalletIdFactorsByFactorId"];
        options?: never;
        head?: never;
        /** Set a factor priority (enabling needs that factor verified) */
        patch: operations["patchWalletsByWalletIdFactorsByFactorId"];
        trace?: never;
    };
    "/wallets/{walletId}/factors/{factorId}/verification": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Verify a second-factor challenge */
        put: operations["putWalletsByWalletIdFactorsByFactorIdVerification"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/blobs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Create a blob (owner or admin) */
        post: operations["postBlobs"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/accounts/{address}/blobs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** An account's blobs (private ones for the owner or admin) */
        get: operations["getAccountsByAddressBlobs"];
        put?: never;
        /** Create an account-owned blob */
        post: operations["postAccountsByAddressBlobs"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/blobs/{blobId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get a blob */
        get: operations["getBlobsByBlobId"];
        put?: never;
        post?: never;
        /** Delete a blob (owner or admin) */
        delete: operations["deleteBlobsByBlobId"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/accounts/{address}/blobs/{blobId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Get an account-owned blob */
        get: operations["getAccountsByAddressBlobsByBlobId"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/documents": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Upload policy for a document (owner or admin) */
        post: operations["postDocuments"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/accounts/{address}/documents": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Upload policy for an account document */
        post: operations["postAccountsByAddressDocuments"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/documents/{key}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Download URL of a document */
        get: operations["getDocumentsByKey"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/accounts/{address}/documents/{key}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Download URL of an account document */
        get: operations["getAccountsByAddressDocumentsByKey"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identities": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Identities: full list for admins, lookup by one filter for everyone */
        get: operations["getIdentities"];
        put?: never;
        /** Create an unregistered identity and its account (admin) */
        post: operations["postIdentities"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identities/mass-create": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Create unregistered identities in bulk (admin) */
        post: operations["postIdentitiesMassCreate"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identities/mass-emails": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Identities of many accounts (admin) */
        post: operations["postIdentitiesMassEmails"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identities/{identifier}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Delete an unregistered identity by address or email (owner or admin) */
        delete: operations["deleteIdentitiesByIdentifier"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identities/{address}/settings/phone": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Change the phone number (owner; second factor when enabled) */
        put: operations["putIdentitiesByAddressSettingsPhone"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identities/{address}/settings/telegram": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Change the telegram username (owner; second factor when enabled) */
        put: operations["putIdentitiesByAddressSettingsTelegram"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identities/{address}/settings": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** All settings of an identity (owner or admin) */
        get: operations["getIdentitiesByAddressSettings"];
        /** Set a setting (owner) */
        put: operations["putIdentitiesByAddressSettings"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/identities/{address}/settings/{key}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One setting (value null when unset) */
        get: operations["getIdentitiesByAddressSettingsByKey"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/invites": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List invites (the inviter or an admin) */
        get: operations["getInvites"];
        put?: never;
        /** Invite one or many emails */
        post: operations["postInvites"];
        /** Delete invites */
        delete: operations["deleteInvites"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/demo-idp/.well-known/openid-configuration": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Demo IdP discovery */
        get: operations["getDemoIdpWellKnownOpenidConfiguration"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/demo-idp/authorize": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Authorization code flow (PKCE S256): a page asking which email signs in */
        get: operations["getDemoIdpAuthorize"];
        put?: never;
        /** Issue an authorization code and redirect back to the client */
        post: operations["postDemoIdpAuthorize"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/demo-idp/jwks.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Demo IdP keys */
        get: operations["getDemoIdpJwksJson"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/demo-idp/token": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Sign a demo ID token for an email (JSON `{ email }`, development only), or redeem an authorization code (form: grant_type=authorization_code, code, redirect_uri, client_id, code_verifier) */
        post: operations["postDemoIdpToken"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        JsonValueInput: unknown;
        /**
         * @example {
         *       "token": "eyJhbGciOiJSUzI1NiIsImtpZCI6ImRlbW8ifQ.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl"
         *     }
         */
        ExchangeRequestInput: {
            token: string;
        };
        /**
         * @example {
         *       "refreshToken": "rt_5Jc0n7dG2Qm8xYvB3kLw"
         *     }
         */
        RefreshRequestInput: {
            refreshToken: string;
        };
        /**
         * @example {
         *       "onboardingCompleted": true
         *     }
         */
        UpdateUserRequestInput: {
            onboardingCompleted?: boolean;
            /** @enum {string} */
            role?: "user" | "org_admin";
        };
        /**
         * @example {
         *       "firstName": "Ada",
         *       "lastName": "Lovelace",
         *       "address": "1 Market St",
         *       "city": "San Francisco",
         *       "state": "CA",
         *       "zip": "94105",
         *       "country": "USA",
         *       "ssn": "123456789",
         *       "dobMonth": "07",
         *       "dobDay": "14",
         *       "dobYear": "1990",
         *       "email": "ada@example.com",
         *       "telephone": "+14155550123",
         *       "idType": "driverLicense",
         *       "idIssuer": "CA",
         *       "idNumber": "D1234567"
         *     }
         */
        CreatePiiRequestInput: {
            firstName: string;
            lastName: string;
            address?: string;
            city?: string;
            state?: string;
            zip?: string;
            country?: string;
            ssn?: string;
            ssnLast4?: string;
            dobMonth?: string;
            dobDay?: string;
            dobYear?: string;
            /** Format: email */
            email?: string;
            telephone?: string;
            /** @enum {string} */
            idType?: "driverLicense" | "passport" | "stateId" | "nationalId";
            idIssuer?: string;
            idNumber?: string;
            /** Format: uuid */
            userId?: string;
        };
        /**
         * @example {
         *       "city": "Oakland",
         *       "zip": "94607"
         *     }
         */
        UpdatePiiRequestInput: {
            firstName?: string;
            lastName?: string;
            address?: string;
            city?: string;
            state?: string;
            zip?: string;
            country?: string;
            ssn?: string;
            ssnLast4?: string;
            dobMonth?: string;
            dobDay?: string;
            dobYear?: string;
            /** Format: email */
            email?: string;
            telephone?: string;
            /** @enum {string} */
            idType?: "driverLicense" | "passport" | "stateId" | "nationalId";
            idIssuer?: string;
            idNumber?: string;
        };
        /**
         * @example {
         *       "firstName": "Ada",
         *       "lastName": "Lovelace",
         *       "address": "1 Market St",
         *       "city": "San Francisco",
         *       "state": "CA",
         *       "zip": "94105",
         *       "country": "USA",
         *       "ssn": "123456789",
         *       "dobMonth": "07",
         *       "dobDay": "14",
         *       "dobYear": "1990",
         *       "email": "ada@example.com",
         *       "telephone": "+14155550123",
         *       "idType": "driverLicense",
         *       "idIssuer": "CA",
         *       "idNumber": "D1234567"
         *     }
         */
        CreateKycRequestInput: {
            firstName: string;
            lastName: string;
            address: string;
            city: string;
            state: string;
            zip: string;
            country: string;
            ssn?: string;
            ssnLast4?: string;
            dobMonth: string;
            dobDay: string;
            dobYear: string;
            /** Format: email */
            email?: string;
            telephone?: string;
            /** @enum {string} */
            idType?: "driverLicense" | "passport" | "stateId" | "nationalId";
            idIssuer?: string;
            idNumber?: string;
        };
        /** @enum {string} */
        KycStatusInput: "pending" | "action_required" | "needs_review" | "approved" | "rejected" | "expired" | "error";
        /** @enum {string} */
        AccreditationBasisInput: "income" | "net_worth" | "license_7_65_82" | "entity" | "not_accredited";
        /** @enum {string} */
        AccreditationDocumentTypeInput: "income_proof" | "net_worth_proof" | "license_proof" | "entity_proof";
        /**
         * @example {
         *       "accreditationStatus": "accredited",
         *       "accreditationBasis": "income"
         *     }
         */
        SubmitAccreditationRequestInput: {
            /** @enum {string} */
            accreditationStatus: "accredited" | "non_accredited";
            accreditationBasis: components["schemas"]["AccreditationBasisInput"];
        };
        /**
         * @example {
         *       "documentType": "income_proof",
         *       "fileName": "w2-2025.pdf",
         *       "contentType": "application/pdf",
         *       "fileSizeBytes": 48213
         *     }
         */
        AccreditationUploadRequestInput: {
            documentType: components["schemas"]["AccreditationDocumentTypeInput"];
            fileName: string;
            /** @enum {string} */
            contentType: "application/pdf" | "image/jpeg" | "image/png";
            fileSizeBytes: number;
        };
        /**
         * @example {
         *       "documentType": "income_proof",
         *       "fileName": "w2-2025.pdf",
         *       "contentType": "application/pdf",
         *       "content": "JVBERi0xLjQK"
         *     }
         */
        AccreditationDocumentUploadInput: {
            documentType: components["schemas"]["AccreditationDocumentTypeInput"];
            fileName: string;
            /** @enum {string} */
            contentType: "application/pdf" | "image/jpeg" | "image/png";
            /** Format: base64 */
            content: string;
        };
        /** @enum {string} */
        AccreditationReviewStatusInput: "not_required" | "pending_review" | "under_review" | "more_info_needed" | "approved" | "denied" | "expired";
        /** @enum {string} */
        ExemptionTypeInput: "reg_d_506b" | "reg_d_506c" | "reg_cf" | "reg_a_tier_1" | "reg_a_tier_2" | "reg_s";
        /** @enum {string} */
        OfferingStatusInput: "draft" | "open" | "paused" | "closed";
        /** @enum {string} */
        SecurityCategoryInput: "equity" | "preferred_equity" | "debt" | "convertible" | "revenue_share" | "fund_interest";
        /**
         * @example {
         *       "legalName": "Acme Holdings Inc."
         *     }
         */
        CreateIssuerRequestInput: {
            /** Format: uuid */
            orgId?: string;
            legalName: string;
            /** Format: date */
            formationDate?: string;
            countryOfFormation?: string;
            countrySubdivisionOfFormation?: string;
        };
        CreateOfferingRequestInput: {
            /** Format: uuid */
            issuerId: string;
            name: string;
            exemptionType: components["schemas"]["ExemptionTypeInput"];
            /**
             * @default USD
             * @constant
             */
            currency?: "USD";
            targetAmount: string;
            maximumAmount: string;
            minimumInvestment: string;
            maximumInvestment?: string;
            /** Format: date */
            deadline: string;
        };
        UpdateOfferingRequestInput: {
            name?: string;
            targetAmount?: string;
            maximumAmount?: string;
            minimumInvestment?: string;
            maximumInvestment?: string | null;
            /** Format: date */
            deadline?: string;
        };
        CreateSecurityClassRequestInput: {
            name: string;
            category: components["schemas"]["SecurityCategoryInput"];
            pricePerUnit: string;
            unitsAuthorized: number;
        };
        /**
         * @example {
         *       "kind": "ppm",
         *       "title": "Private placement memorandum",
         *       "contentType": "application/pdf",
         *       "content": "JVBERi0xLjQK"
         *     }
         */
        CreateOfferingDocumentRequestInput: {
            /** @enum {string} */
            kind: "ppm" | "subscription_agreement" | "other";
            title: string;
            /** @enum {string} */
            contentType: "application/pdf" | "text/plain" | "text/html";
            /** Format: base64 */
            content: string;
        };
        /** @enum {string} */
        SubscriptionStatusInput: "draft" | "pending_signature" | "pending_payment" | "pending_review" | "approved" | "completed" | "rejected" | "cancelled";
        CreateSubscriptionRequestInput: {
            /** Format: uuid */
            securityClassId: string;
            unitsSubscribed: number;
            trancheId?: string;
            /** @enum {string} */
            paymentMethod: "card" | "us_bank_account";
            /** @enum {string} */
            accreditationStatus: "accredited" | "non_accredited";
            suitabilityConfirmed: boolean;
            riskAcknowledgmentSigned: boolean;
            annualIncome?: string;
            netWorth?: string;
            otherRegCfInvestments?: string;
        };
        /**
         * @example {
         *       "signerName": "Ada Lovelace",
         *       "consent": true
         *     }
         */
        SignSubscriptionRequestInput: {
            signerName: string;
            /** @constant */
            consent: true;
        };
        CreateCheckoutRequestInput: {
            /** Format: uri */
            successUrl?: string;
            /** Format: uri */
            cancelUrl?: string;
        } | null;
        /**
         * @example {
         *       "url": "https://hooks.example.com/tranche",
         *       "description": "Back office",
         *       "eventTypes": [
         *         "*"
         *       ]
         *     }
         */
        CreateWebhookEndpointRequestInput: {
            /** Format: uri */
            url: string;
            description?: string;
            /**
             * @default [
             *       "*"
             *     ]
             */
            eventTypes?: string[];
        };
        /**
         * @example {
         *       "status": "disabled"
         *     }
         */
        UpdateWebhookEndpointRequestInput: {
            /** Format: uri */
            url?: string;
            description?: string | null;
            /** @enum {string} */
            status?: "active" | "disabled";
        };
        /**
         * @example {
         *       "eventTypes": [
         *         "*"
         *       ]
         *     }
         */
        WebhookSubscriptionsRequestInput: {
            eventTypes: string[];
        };
        RotateWebhookSecretRequestInput: {
            gracePeriodSeconds?: number;
        } | null;
        /**
         * @example {
         *       "since": "2026-01-15T09:30:00Z"
         *     }
         */
        RecoverWebhookDeliveriesRequestInput: {
            /** Format: date-time */
            since: string;
        };
        JsonValue: unknown;
        Error: {
            /** @constant */
            success: false;
            error: {
                message: string;
                code: string;
                field?: string;
                details?: {
                    field: string;
                    message: string;
                }[];
                request_id?: string;
            };
        };
        TokenResponse: {
            /**
             * @description a JWT (RS256) for `Authorization: Bearer`
             * @example eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiIxIn0.c2ln
             */
            access_token: string;
            /** @constant */
            token_type: "Bearer";
            /**
             * @description seconds until the access token expires
             * @example 300
             */
            expires_in: number;
            /**
             * @description single use: each refresh returns a new one
             * @example rt_5Jc0n7dG2Qm8xYvB3kLw
             */
            refresh_token: string;
            /**
             * @description seconds until the refresh token expires
             * @example 1800
             */
            refresh_expires_in: number;
            /**
             * @description the user's role: `user` or `org_admin`
             * @example user
             */
            scope: string;
        };
        OAuthError: {
            error: string;
            error_description: string;
        };
        Jwks: {
            keys: {
                [key: string]: unknown;
            }[];
        };
        User: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            org_id: string;
            email: string;
            /** @enum {string} */
            role: "user" | "org_admin";
            onboarding_completed: boolean;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
        };
        Deleted: {
            /** Format: uuid */
            id: string;
            /** @constant */
            deleted: true;
        };
        Pii: {
            /** Format: uuid */
            user_id: string;
            first_name: string | null;
            last_name: string | null;
            address: string | null;
            city: string | null;
            state: string | null;
            zip: string | null;
            country: string | null;
            /** @description masked: *****1234 */
            ssn: string | null;
            dob_month: string | null;
            dob_day: string | null;
            dob_year: string | null;
            email: string | null;
            telephone: string | null;
            id_type: string | null;
            id_issuer: string | null;
            id_number: string | null;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
        };
        /** @enum {string} */
        KycStatus: "pending" | "action_required" | "needs_review" | "approved" | "rejected" | "expired" | "error";
        KycVerification: {
            /** Format: uuid */
            verification_id: string;
            /** Format: uuid */
            user_id: string;
            /** Format: uuid */
            org_id: string;
            status: components["schemas"]["KycStatus"];
            checks: {
                /** @enum {string} */
                identity: "not_attempted" | "pending" | "passed" | "failed" | "needs_review";
                /** @enum {string} */
                document: "not_attempted" | "pending" | "passed" | "failed" | "needs_review";
            };
            required_action: {
                /** @constant */
                type: "document_scan";
                url: string;
            } | null;
            /** Format: date-time */
            submitted_at: string;
            completed_at: string | null;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
        };
        KycEffectiveVerification: {
            verification_id: string | null;
            /** Format: uuid */
            user_id: string;
            /** Format: uuid */
            org_id: string;
            status: components["schemas"]["KycStatus"] | "not_started";
            checks: {
                /** @enum {string} */
                identity: "not_attempted" | "pending" | "passed" | "failed" | "needs_review";
                /** @enum {string} */
                document: "not_attempted" | "pending" | "passed" | "failed" | "needs_review";
            };
            required_action: {
                /** @constant */
                type: "document_scan";
                url: string;
            } | null;
            submitted_at: string | null;
            completed_at: string | null;
            created_at: string | null;
            updated_at: string | null;
        };
        KycVerificationSummary: {
            /** Format: uuid */
            verification_id: string;
            /** Format: uuid */
            user_id: string;
            /** Format: uuid */
            org_id: string;
            status: components["schemas"]["KycStatus"];
            checks: {
                /** @enum {string} */
                identity: "not_attempted" | "pending" | "passed" | "failed" | "needs_review";
                /** @enum {string} */
                document: "not_attempted" | "pending" | "passed" | "failed" | "needs_review";
            };
            /** Format: date-time */
            submitted_at: string;
            completed_at: string | null;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
        };
        KycSession: {
            /** Format: uuid */
            session_id: string;
            /** Format: uuid */
            user_id: string;
            /** Format: uuid */
            org_id: string;
            status: components["schemas"]["KycStatus"];
            verification_url: string | null;
            checks: {
                /** @enum {string} */
                identity: "not_attempted" | "pending" | "passed" | "failed" | "needs_review";
                /** @enum {string} */
                document: "not_attempted" | "pending" | "passed" | "failed" | "needs_review";
            };
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
            completed_at: string | null;
        };
        /** @enum {string} */
        AccreditationBasis: "income" | "net_worth" | "license_7_65_82" | "entity" | "not_accredited";
        /** @enum {string} */
        AccreditationDocumentType: "income_proof" | "net_worth_proof" | "license_proof" | "entity_proof";
        AccreditationDocument: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            accreditation_id: string;
            document_type: components["schemas"]["AccreditationDocumentType"];
            file_name: string;
            content_type: string;
            file_size_bytes: number;
            sha256: string | null;
            /** @enum {string} */
            status: "upload_pending" | "uploaded" | "upload_failed";
            uploaded_at: string | null;
            /** Format: date-time */
            created_at: string;
        };
        AccreditationUpload: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            accreditation_id: string;
            document_type: components["schemas"]["AccreditationDocumentType"];
            file_name: string;
            content_type: string;
            file_size_bytes: number;
            sha256: string | null;
            /** @enum {string} */
            status: "upload_pending" | "uploaded" | "upload_failed";
            uploaded_at: string | null;
            /** Format: date-time */
            created_at: string;
            upload: {
                /** @constant */
                method: "PUT";
                url: string;
                headers: {
                    [key: string]: string;
                };
                /** Format: date-time */
                expires_at: string;
            };
        };
        /** @enum {string} */
        AccreditationReviewStatus: "not_required" | "pending_review" | "under_review" | "more_info_needed" | "approved" | "denied" | "expired";
        Accreditation: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            user_id: string;
            /** Format: uuid */
            org_id: string;
            /** @enum {string} */
            accreditation_status: "pending" | "accredited" | "non_accredited" | "qualified_purchaser" | "qualified_client" | "expired";
            accreditation_basis: components["schemas"]["AccreditationBasis"] | null;
            review_status: components["schemas"]["AccreditationReviewStatus"];
            verified: boolean;
            review_reason: string | null;
            submitted_at: string | null;
            reviewed_at: string | null;
            expires_at: string | null;
            documents: components["schemas"]["AccreditationDocument"][];
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
        };
        AccreditationSession: {
            /** Format: uuid */
            user_id: string;
            /** Format: uuid */
            org_id: string;
            /** @enum {string} */
            accreditation_status: "pending" | "accredited" | "non_accredited" | "qualified_purchaser" | "qualified_client" | "expired";
            accreditation_basis: components["schemas"]["AccreditationBasis"] | null;
            review_status: components["schemas"]["AccreditationReviewStatus"];
            verified: boolean;
            review_reason: string | null;
            submitted_at: string | null;
            reviewed_at: string | null;
            expires_at: string | null;
            documents: components["schemas"]["AccreditationDocument"][];
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
            /** Format: uuid */
            session_id: string;
        };
        /** @enum {string} */
        ExemptionType: "reg_d_506b" | "reg_d_506c" | "reg_cf" | "reg_a_tier_1" | "reg_a_tier_2" | "reg_s";
        /** @enum {string} */
        OfferingStatus: "draft" | "open" | "paused" | "closed";
        /** @enum {string} */
        SecurityCategory: "equity" | "preferred_equity" | "debt" | "convertible" | "revenue_share" | "fund_interest";
        Offering: {
            /** Format: uuid */
            id: string;
            name: string;
            issuer: {
                /** Format: uuid */
                id: string;
                legal_name: string;
            };
            exemption_type: components["schemas"]["ExemptionType"];
            amounts: {
                target: string;
                maximum: string;
                raised: string;
                remaining: string;
                currency: string;
            };
            investment: {
                minimum: string;
                maximum: string | null;
            };
            investors: {
                total: number;
                accredited: number;
                non_accredited: number;
            };
            deadline: string;
            status: components["schemas"]["OfferingStatus"];
            opened_at: string | null;
            closed_at: string | null;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
        };
        SecurityClass: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            offering_id: string;
            name: string;
            category: components["schemas"]["SecurityCategory"];
            price_per_unit: string;
            currency: string;
            units_authorized: number;
            units_available: number;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
        };
        OfferingDocument: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            offering_id: string;
            /** @enum {string} */
            kind: "ppm" | "subscription_agreement" | "other";
            title: string;
            version: number;
            content_type: string;
            size_bytes: number;
            sha256: string;
            url: string;
            /** Format: date-time */
            created_at: string;
        };
        /** @enum {string} */
        SubscriptionStatus: "draft" | "pending_signature" | "pending_payment" | "pending_review" | "approved" | "completed" | "rejected" | "cancelled";
        Subscription: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            offering_id: string;
            /** Format: uuid */
            security_class_id: string;
            /** Format: uuid */
            user_id: string;
            units_subscribed: number;
            price_per_unit: string;
            amount: string;
            currency: string;
            tranche_id: string | null;
            /** @enum {string} */
            payment_method: "card" | "us_bank_account";
            /** @enum {string} */
            accreditation_status: "accredited" | "non_accredited";
            suitability_confirmed: boolean;
            risk_acknowledgment_signed: boolean;
            status: components["schemas"]["SubscriptionStatus"];
            /** @enum {string} */
            payment_status: "none" | "processing" | "paid" | "failed" | "refunded";
            signed_at: string | null;
            funded_at: string | null;
            approved_at: string | null;
            completed_at: string | null;
            cancelled_at: string | null;
            cancel_reason: string | null;
            review_reason: string | null;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
        };
        Checkout: {
            session_id: string;
            checkout_url: string;
            amount: string;
            currency: string;
        };
        WebhookEndpoint: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            org_id: string;
            url: string;
            description: string | null;
            event_types: string[];
            /** @enum {string} */
            status: "active" | "disabled";
            disabled_reason: string | null;
            disabled_at: string | null;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
        };
        CreatedWebhookEndpoint: {
            /** Format: uuid */
            id: string;
            /** Format: uuid */
            org_id: string;
            url: string;
            description: string | null;
            event_types: string[];
            /** @enum {string} */
            status: "active" | "disabled";
            disabled_reason: string | null;
            disabled_at: string | null;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            updated_at: string;
            signing_secret: string;
        };
        /** @description JSON:API error document, as TokenD renders it: the first error sets the HTTP status. */
        JsonApiErrors: {
            errors: {
                /** @example Bad Request */
                title: string;
                /** @example 400 */
                status: string;
                code?: string;
                detail?: string;
                meta?: {
                    [key: string]: unknown;
                };
            }[];
        };
        /** @description JSON:API document: one resource or a page of them, with links and included resources. */
        JsonApiDocument: {
            data?: components["schemas"]["JsonApiResource"] | components["schemas"]["JsonApiResource"][] | null;
            included?: components["schemas"]["JsonApiResource"][];
            links?: {
                [key: string]: string;
            };
            meta?: {
                [key: string]: unknown;
            };
        };
        JsonApiResource: {
            /** @example wallet */
            type: string;
            /** @example aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa */
            id?: string;
            /**
             * @example {
             *       "email": "investor@example.com",
             *       "verified": true
             *     }
             */
            attributes?: {
                [key: string]: unknown;
            };
            relationships?: {
                [key: string]: unknown;
            };
            links?: {
                [key: string]: unknown;
            };
        };
    };
    responses: {
        /** @description Bad Request */
        BadRequest: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                /**
                 * @example {
                 *       "success": false,
                 *       "error": {
                 *         "message": "email: Invalid email address",
                 *         "code": "VALIDATION_ERROR",
                 *         "request_id": "c5b4f6a2-0d1e-4d55-9e0c-7b1f3e2a9c41"
                 *       }
                 *     }
                 */
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description Forbidden */
        Forbidden: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                /**
                 * @example {
                 *       "success": false,
                 *       "error": {
                 *         "message": "Not allowed for this principal",
                 *         "code": "FORBIDDEN",
                 *         "request_id": "c5b4f6a2-0d1e-4d55-9e0c-7b1f3e2a9c41"
                 *       }
                 *     }
                 */
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description Not Found */
        NotFound: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                /**
                 * @example {
                 *       "success": false,
                 *       "error": {
                 *         "message": "Resource not found",
                 *         "code": "NOT_FOUND",
                 *         "request_id": "c5b4f6a2-0d1e-4d55-9e0c-7b1f3e2a9c41"
                 *       }
                 *     }
                 */
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description Unprocessable Entity */
        UnprocessableEntity: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                /**
                 * @example {
                 *       "success": false,
                 *       "error": {
                 *         "message": "Idempotency-Key was used with another request body",
                 *         "code": "IDEMPOTENCY_KEY_REUSED",
                 *         "request_id": "c5b4f6a2-0d1e-4d55-9e0c-7b1f3e2a9c41"
                 *       }
                 *     }
                 */
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description Service Unavailable */
        ServiceUnavailable: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                /**
                 * @example {
                 *       "success": false,
                 *       "error": {
                 *         "message": "The database is unavailable; retry later",
                 *         "code": "SERVICE_UNAVAILABLE",
                 *         "request_id": "c5b4f6a2-0d1e-4d55-9e0c-7b1f3e2a9c41"
                 *       }
                 *     }
                 */
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description Bad Request */
        BadRequestJsonApi: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                /**
                 * @example {
                 *       "errors": [
                 *         {
                 *           "title": "Bad Request",
                 *           "status": "400",
                 *           "detail": "email: Invalid email address"
                 *         }
                 *       ]
                 *     }
                 */
                "application/vnd.api+json": components["schemas"]["JsonApiErrors"];
            };
        };
        /** @description Unauthorized */
        UnauthorizedJsonApi: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                /**
                 * @example {
                 *       "errors": [
                 *         {
                 *           "title": "Unauthorized",
                 *           "status": "401",
                 *           "detail": "Missing or invalid credentials"
                 *         }
                 *       ]
                 *     }
                 */
                "application/vnd.api+json": components["schemas"]["JsonApiErrors"];
            };
        };
        /** @description Forbidden */
        ForbiddenJsonApi: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                /**
                 * @example {
                 *       "errors": [
                 *         {
                 *           "title": "Forbidden",
                 *           "status": "403",
                 *           "detail": "Not allowed for this principal"
                 *         }
                 *       ]
                 *     }
                 */
                "application/vnd.api+json": components["schemas"]["JsonApiErrors"];
            };
        };
        /** @description Not Found */
        NotFoundJsonApi: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                /**
                 * @example {
                 *       "errors": [
                 *         {
                 *           "title": "Not Found",
                 *           "status": "404",
                 *           "detail": "Resource not found"
                 *         }
                 *       ]
                 *     }
                 */
                "application/vnd.api+json": components["schemas"]["JsonApiErrors"];
            };
        };
        /** @description Too Many Requests */
        TooManyRequestsJsonApi: {
            headers: {
                /** @description Seconds to wait before retrying */
                "Retry-After"?: number;
                [name: string]: unknown;
            };
            content: {
                /**
                 * @example {
                 *       "errors": [
                 *         {
                 *           "title": "Too Many Requests",
                 *           "status": "429",
                 *           "detail": "Too many requests; retry later"
                 *         }
                 *       ]
                 *     }
                 */
                "application/vnd.api+json": components["schemas"]["JsonApiErrors"];
            };
        };
        /** @description Service Unavailable */
        ServiceUnavailableJsonApi: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                /**
                 * @example {
                 *       "errors": [
                 *         {
                 *           "title": "Service Unavailable",
                 *           "status": "503",
                 *           "detail": "The database is unavailable; retry later"
                 *         }
                 *       ]
                 *     }
                 */
                "application/vnd.api+json": components["schemas"]["JsonApiErrors"];
            };
        };
    };
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    getHealthLive: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "status": "ok"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** @enum {string} */
                            status: "ok";
                        };
                    };
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getHealthReady: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "status": "ready",
                     *         "checks": {
                     *           "database": "ok",
                     *           "migrations": "ok"
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** @enum {string} */
                            status: "ready";
                            checks: {
                                /** @enum {string} */
                                database: "ok";
                                /** @enum {string} */
                                migrations: "ok";
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
        };
    };
    getIdentity: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "service": "service",
                     *         "description": "description",
                     *         "version": "version",
                     *         "started_at": "started_at",
                     *         "docs_url": "docs_url"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            service: string;
                            description: string;
                            version: string;
                            started_at: string;
                            docs_url: string;
                        };
                    };
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityHealth: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postIdentityAuthExchange: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "token": "eyJhbGciOiJSUzI1NiIsImtpZCI6ImRlbW8ifQ.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl"
                 *     }
                 */
                "application/json": components["schemas"]["ExchangeRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "access_token": "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiIxIn0.c2ln",
                     *       "token_type": "Bearer",
                     *       "expires_in": 300,
                     *       "refresh_token": "rt_5Jc0n7dG2Qm8xYvB3kLw",
                     *       "refresh_expires_in": 1800,
                     *       "scope": "user"
                     *     }
                     */
                    "application/json": components["schemas"]["TokenResponse"];
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["OAuthError"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["OAuthError"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["OAuthError"];
                };
            };
            /** @description Default Response */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["OAuthError"];
                };
            };
        };
    };
    postIdentityAuthRefresh: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "refreshToken": "rt_5Jc0n7dG2Qm8xYvB3kLw"
                 *     }
                 */
                "application/json": components["schemas"]["RefreshRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "access_token": "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiIxIn0.c2ln",
                     *       "token_type": "Bearer",
                     *       "expires_in": 300,
                     *       "refresh_token": "rt_5Jc0n7dG2Qm8xYvB3kLw",
                     *       "refresh_expires_in": 1800,
                     *       "scope": "user"
                     *     }
                     */
                    "application/json": components["schemas"]["TokenResponse"];
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["OAuthError"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["OAuthError"];
                };
            };
            /** @description Default Response */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["OAuthError"];
                };
            };
            /** @description Default Response */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["OAuthError"];
                };
            };
        };
    };
    getIdentityWellKnownJwksJson: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "keys": [
                     *         {}
                     *       ]
                     *     }
                     */
                    "application/json": components["schemas"]["Jwks"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityUsersByUserId: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                userId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "email": "investor@example.com",
                     *         "role": "user",
                     *         "onboarding_completed": true,
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["User"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    deleteIdentityUsersByUserId: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                userId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "deleted": true
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Deleted"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    patchIdentityUsersByUserId: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                userId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "onboardingCompleted": true
                 *     }
                 */
                "application/json": components["schemas"]["UpdateUserRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "email": "investor@example.com",
                     *         "role": "user",
                     *         "onboarding_completed": true,
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["User"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postIdentityUserPii: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "firstName": "Ada",
                 *       "lastName": "Lovelace",
                 *       "address": "1 Market St",
                 *       "city": "San Francisco",
                 *       "state": "CA",
                 *       "zip": "94105",
                 *       "country": "USA",
                 *       "ssn": "123456789",
                 *       "dobMonth": "07",
                 *       "dobDay": "14",
                 *       "dobYear": "1990",
                 *       "email": "ada@example.com",
                 *       "telephone": "+14155550123",
                 *       "idType": "driverLicense",
                 *       "idIssuer": "CA",
                 *       "idNumber": "D1234567"
                 *     }
                 */
                "application/json": components["schemas"]["CreatePiiRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "first_name": "first_name",
                     *         "last_name": "last_name",
                     *         "address": "1 Market St",
                     *         "city": "San Francisco",
                     *         "state": "CA",
                     *         "zip": "94105",
                     *         "country": "USA",
                     *         "ssn": "ssn",
                     *         "dob_month": "dob_month",
                     *         "dob_day": "dob_day",
                     *         "dob_year": "dob_year",
                     *         "email": "investor@example.com",
                     *         "telephone": "telephone",
                     *         "id_type": "id_type",
                     *         "id_issuer": "id_issuer",
                     *         "id_number": "id_number",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Pii"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityUserPiiByUserId: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                userId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "first_name": "first_name",
                     *         "last_name": "last_name",
                     *         "address": "1 Market St",
                     *         "city": "San Francisco",
                     *         "state": "CA",
                     *         "zip": "94105",
                     *         "country": "USA",
                     *         "ssn": "ssn",
                     *         "dob_month": "dob_month",
                     *         "dob_day": "dob_day",
                     *         "dob_year": "dob_year",
                     *         "email": "investor@example.com",
                     *         "telephone": "telephone",
                     *         "id_type": "id_type",
                     *         "id_issuer": "id_issuer",
                     *         "id_number": "id_number",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Pii"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    deleteIdentityUserPiiByUserId: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                userId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "deleted": true
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Deleted"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    patchIdentityUserPiiByUserId: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                userId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "city": "Oakland",
                 *       "zip": "94607"
                 *     }
                 */
                "application/json": components["schemas"]["UpdatePiiRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "first_name": "first_name",
                     *         "last_name": "last_name",
                     *         "address": "1 Market St",
                     *         "city": "San Francisco",
                     *         "state": "CA",
                     *         "zip": "94105",
                     *         "country": "USA",
                     *         "ssn": "ssn",
                     *         "dob_month": "dob_month",
                     *         "dob_day": "dob_day",
                     *         "dob_year": "dob_year",
                     *         "email": "investor@example.com",
                     *         "telephone": "telephone",
                     *         "id_type": "id_type",
                     *         "id_issuer": "id_issuer",
                     *         "id_number": "id_number",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Pii"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityKycVerifications: {
        parameters: {
            query?: {
                limit?: number;
                offset?: number;
                status?: components["schemas"]["KycStatusInput"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "verification_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "status": "pending",
                     *             "checks": {
                     *               "identity": "not_attempted",
                     *               "document": "not_attempted"
                     *             },
                     *             "submitted_at": "2026-01-15T09:30:00.000Z",
                     *             "completed_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "limit": 1,
                     *           "offset": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "has_next_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["KycVerificationSummary"][];
                            meta: {
                                limit: number;
                                offset: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description whether items follow this page (page on with `offset` + `limit`), past the capped `total` too */
                                has_next_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postIdentityKycVerifications: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "firstName": "Ada",
                 *       "lastName": "Lovelace",
                 *       "address": "1 Market St",
                 *       "city": "San Francisco",
                 *       "state": "CA",
                 *       "zip": "94105",
                 *       "country": "USA",
                 *       "ssn": "123456789",
                 *       "dobMonth": "07",
                 *       "dobDay": "14",
                 *       "dobYear": "1990",
                 *       "email": "ada@example.com",
                 *       "telephone": "+14155550123",
                 *       "idType": "driverLicense",
                 *       "idIssuer": "CA",
                 *       "idNumber": "D1234567"
                 *     }
                 */
                "application/json": components["schemas"]["CreateKycRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "verification_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "status": "pending",
                     *         "checks": {
                     *           "identity": "not_attempted",
                     *           "document": "not_attempted"
                     *         },
                     *         "required_action": {
                     *           "type": "document_scan",
                     *           "url": "https://hooks.example.com/tranche"
                     *         },
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["KycVerification"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityKycVerificationsById: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "verification_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "status": "pending",
                     *         "checks": {
                     *           "identity": "not_attempted",
                     *           "document": "not_attempted"
                     *         },
                     *         "required_action": {
                     *           "type": "document_scan",
                     *           "url": "https://hooks.example.com/tranche"
                     *         },
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["KycVerification"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityKyc: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "verification_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "status": "pending",
                     *         "checks": {
                     *           "identity": "not_attempted",
                     *           "document": "not_attempted"
                     *         },
                     *         "required_action": {
                     *           "type": "document_scan",
                     *           "url": "https://hooks.example.com/tranche"
                     *         },
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["KycEffectiveVerification"];
                    };
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postIdentityKycSessions: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "firstName": "Ada",
                 *       "lastName": "Lovelace",
                 *       "address": "1 Market St",
                 *       "city": "San Francisco",
                 *       "state": "CA",
                 *       "zip": "94105",
                 *       "country": "USA",
                 *       "ssn": "123456789",
                 *       "dobMonth": "07",
                 *       "dobDay": "14",
                 *       "dobYear": "1990",
                 *       "email": "ada@example.com",
                 *       "telephone": "+14155550123",
                 *       "idType": "driverLicense",
                 *       "idIssuer": "CA",
                 *       "idNumber": "D1234567"
                 *     }
                 */
                "application/json": components["schemas"]["CreateKycRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "session_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "status": "pending",
                     *         "verification_url": "verification_url",
                     *         "checks": {
                     *           "identity": "not_attempted",
                     *           "document": "not_attempted"
                     *         },
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["KycSession"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityKycSessionsUser: {
        parameters: {
            query?: {
                limit?: number;
                offset?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "session_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "status": "pending",
                     *             "verification_url": "verification_url",
                     *             "checks": {
                     *               "identity": "not_attempted",
                     *               "document": "not_attempted"
                     *             },
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z",
                     *             "completed_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "limit": 1,
                     *           "offset": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "has_next_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["KycSession"][];
                            meta: {
                                limit: number;
                                offset: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description whether items follow this page (page on with `offset` + `limit`), past the capped `total` too */
                                has_next_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityKycSessionsBySessionId: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                sessionId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "session_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "status": "pending",
                     *         "verification_url": "verification_url",
                     *         "checks": {
                     *           "identity": "not_attempted",
                     *           "document": "not_attempted"
                     *         },
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["KycSession"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityAccreditations: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "accreditation_status": "pending",
                     *         "accreditation_basis": "income",
                     *         "review_status": "not_required",
                     *         "verified": true,
                     *         "review_reason": "review_reason",
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "reviewed_at": "2026-01-15T09:30:00.000Z",
                     *         "expires_at": "2026-01-15T09:30:00.000Z",
                     *         "documents": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "document_type": "income_proof",
                     *             "file_name": "file_name",
                     *             "content_type": "content_type",
                     *             "file_size_bytes": 1,
                     *             "sha256": "sha256",
                     *             "status": "upload_pending",
                     *             "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Accreditation"];
                    };
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    putIdentityAccreditations: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "accreditationStatus": "accredited",
                 *       "accreditationBasis": "income"
                 *     }
                 */
                "application/json": components["schemas"]["SubmitAccreditationRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "accreditation_status": "pending",
                     *         "accreditation_basis": "income",
                     *         "review_status": "not_required",
                     *         "verified": true,
                     *         "review_reason": "review_reason",
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "reviewed_at": "2026-01-15T09:30:00.000Z",
                     *         "expires_at": "2026-01-15T09:30:00.000Z",
                     *         "documents": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "document_type": "income_proof",
                     *             "file_name": "file_name",
                     *             "content_type": "content_type",
                     *             "file_size_bytes": 1,
                     *             "sha256": "sha256",
                     *             "status": "upload_pending",
                     *             "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Accreditation"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postIdentityAccreditationsDocuments: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "documentType": "income_proof",
                 *       "fileName": "w2-2025.pdf",
                 *       "contentType": "application/pdf",
                 *       "fileSizeBytes": 48213
                 *     }
                 */
                "application/json": components["schemas"]["AccreditationUploadRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "document_type": "income_proof",
                     *         "file_name": "file_name",
                     *         "content_type": "content_type",
                     *         "file_size_bytes": 1,
                     *         "sha256": "sha256",
                     *         "status": "upload_pending",
                     *         "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "upload": {
                     *           "method": "PUT",
                     *           "url": "https://hooks.example.com/tranche",
                     *           "headers": {},
                     *           "expires_at": "2026-01-15T09:30:00.000Z"
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["AccreditationUpload"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postIdentityAccreditationsDocumentsByIdUpload: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "document_type": "income_proof",
                     *         "file_name": "file_name",
                     *         "content_type": "content_type",
                     *         "file_size_bytes": 1,
                     *         "sha256": "sha256",
                     *         "status": "upload_pending",
                     *         "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["AccreditationDocument"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postIdentityAccreditationSessions: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "accreditationStatus": "accredited",
                 *       "accreditationBasis": "income"
                 *     }
                 */
                "application/json": components["schemas"]["SubmitAccreditationRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "accreditation_status": "pending",
                     *         "accreditation_basis": "income",
                     *         "review_status": "not_required",
                     *         "verified": true,
                     *         "review_reason": "review_reason",
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "reviewed_at": "2026-01-15T09:30:00.000Z",
                     *         "expires_at": "2026-01-15T09:30:00.000Z",
                     *         "documents": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "document_type": "income_proof",
                     *             "file_name": "file_name",
                     *             "content_type": "content_type",
                     *             "file_size_bytes": 1,
                     *             "sha256": "sha256",
                     *             "status": "upload_pending",
                     *             "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z",
                     *         "session_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["AccreditationSession"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityAccreditationSessionsUser: {
        parameters: {
            query?: {
                limit?: number;
                offset?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "accreditation_status": "pending",
                     *             "accreditation_basis": "income",
                     *             "review_status": "not_required",
                     *             "verified": true,
                     *             "review_reason": "review_reason",
                     *             "submitted_at": "2026-01-15T09:30:00.000Z",
                     *             "reviewed_at": "2026-01-15T09:30:00.000Z",
                     *             "expires_at": "2026-01-15T09:30:00.000Z",
                     *             "documents": [
                     *               {
                     *                 "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *                 "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *                 "document_type": "income_proof",
                     *                 "file_name": "file_name",
                     *                 "content_type": "content_type",
                     *                 "file_size_bytes": 1,
                     *                 "sha256": "sha256",
                     *                 "status": "upload_pending",
                     *                 "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *                 "created_at": "2026-01-15T09:30:00.000Z"
                     *               }
                     *             ],
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z",
                     *             "session_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "limit": 1,
                     *           "offset": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "has_next_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["AccreditationSession"][];
                            meta: {
                                limit: number;
                                offset: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description whether items follow this page (page on with `offset` + `limit`), past the capped `total` too */
                                has_next_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityAccreditationSessionsBySessionId: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                sessionId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "accreditation_status": "pending",
                     *         "accreditation_basis": "income",
                     *         "review_status": "not_required",
                     *         "verified": true,
                     *         "review_reason": "review_reason",
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "reviewed_at": "2026-01-15T09:30:00.000Z",
                     *         "expires_at": "2026-01-15T09:30:00.000Z",
                     *         "documents": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "document_type": "income_proof",
                     *             "file_name": "file_name",
                     *             "content_type": "content_type",
                     *             "file_size_bytes": 1,
                     *             "sha256": "sha256",
                     *             "status": "upload_pending",
                     *             "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z",
                     *         "session_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["AccreditationSession"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postIdentityAccreditationSessionsBySessionIdDocuments: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                sessionId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "documentType": "income_proof",
                 *       "fileName": "w2-2025.pdf",
                 *       "contentType": "application/pdf",
                 *       "content": "JVBERi0xLjQK"
                 *     }
                 */
                "application/json": components["schemas"]["AccreditationDocumentUploadInput"];
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "document_type": "income_proof",
                     *         "file_name": "file_name",
                     *         "content_type": "content_type",
                     *         "file_size_bytes": 1,
                     *         "sha256": "sha256",
                     *         "status": "upload_pending",
                     *         "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["AccreditationDocument"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getNotifications: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "service": "service",
                     *         "description": "description",
                     *         "version": "version",
                     *         "started_at": "started_at",
                     *         "docs_url": "docs_url"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            service: string;
                            description: string;
                            version: string;
                            started_at: string;
                            docs_url: string;
                        };
                    };
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getNotificationsHealth: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getNotificationsWebhooks: {
        parameters: {
            query?: {
                limit?: number;
                offset?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "url": "https://hooks.example.com/tranche",
                     *             "description": "description",
                     *             "event_types": [
                     *               "event_types"
                     *             ],
                     *             "status": "active",
                     *             "disabled_reason": "disabled_reason",
                     *             "disabled_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "limit": 1,
                     *           "offset": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "has_next_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["WebhookEndpoint"][];
                            meta: {
                                limit: number;
                                offset: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description whether items follow this page (page on with `offset` + `limit`), past the capped `total` too */
                                has_next_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postNotificationsWebhooks: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "url": "https://hooks.example.com/tranche",
                 *       "description": "Back office",
                 *       "eventTypes": [
                 *         "*"
                 *       ]
                 *     }
                 */
                "application/json": components["schemas"]["CreateWebhookEndpointRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "url": "https://hooks.example.com/tranche",
                     *         "description": "description",
                     *         "event_types": [
                     *           "event_types"
                     *         ],
                     *         "status": "active",
                     *         "disabled_reason": "disabled_reason",
                     *         "disabled_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z",
                     *         "signing_secret": "signing_secret"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["CreatedWebhookEndpoint"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getNotificationsWebhooksById: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "url": "https://hooks.example.com/tranche",
                     *         "description": "description",
                     *         "event_types": [
                     *           "event_types"
                     *         ],
                     *         "status": "active",
                     *         "disabled_reason": "disabled_reason",
                     *         "disabled_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["WebhookEndpoint"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    deleteNotificationsWebhooksById: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "deleted": true
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** Format: uuid */
                            id: string;
                            /** @enum {boolean} */
                            deleted: true;
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    patchNotificationsWebhooksById: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "status": "disabled"
                 *     }
                 */
                "application/json": components["schemas"]["UpdateWebhookEndpointRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "url": "https://hooks.example.com/tranche",
                     *         "description": "description",
                     *         "event_types": [
                     *           "event_types"
                     *         ],
                     *         "status": "active",
                     *         "disabled_reason": "disabled_reason",
                     *         "disabled_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["WebhookEndpoint"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postNotificationsWebhooksByIdRotateSecret: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                /**
                 * @example {
                 *       "gracePeriodSeconds": 0
                 *     }
                 */
                "application/json": components["schemas"]["RotateWebhookSecretRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "signing_secret": "signing_secret",
                     *         "previous_secret_expires_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** Format: uuid */
                            id: string;
                            signing_secret: string;
                            /** Format: date-time */
                            previous_secret_expires_at: string;
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postNotificationsWebhooksByIdTest: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "delivery_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "event_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** Format: uuid */
                            delivery_id: string;
                            /** Format: uuid */
                            event_id: string;
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getNotificationsWebhooksByIdSubscriptions: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "event_types": [
                     *           "event_types"
                     *         ]
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** Format: uuid */
                            id: string;
                            event_types: string[];
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    putNotificationsWebhooksByIdSubscriptions: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "eventTypes": [
                 *         "*"
                 *       ]
                 *     }
                 */
                "application/json": components["schemas"]["WebhookSubscriptionsRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "event_types": [
                     *           "event_types"
                     *         ]
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** Format: uuid */
                            id: string;
                            event_types: string[];
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postNotificationsWebhooksByIdRecover: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "since": "2026-01-15T09:30:00Z"
                 *     }
                 */
                "application/json": components["schemas"]["RecoverWebhookDeliveriesRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "recovered": 1
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** Format: uuid */
                            id: string;
                            recovered: number;
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getNotificationsEventTypes: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": [
                     *         {
                     *           "type": "type",
                     *           "description": "description",
                     *           "example": {}
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            type: string;
                            description: string;
                            example: {
                                [key: string]: unknown;
                            };
                        }[];
                    };
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getNotificationsDeliveries: {
        parameters: {
            query?: {
                limit?: number;
                offset?: number;
                /** @description `next_cursor` of the previous page; `offset` is then ignored */
                cursor?: string;
                endpoint_id?: string;
                event_type?: string;
                /** @description skipped: the event happened while the endpoint was disabled; cancelled: it was queued when the endpoint was disabled. Recover sends both, and exhausted ones, again. */
                status?: "pending" | "sending" | "succeeded" | "exhausted" | "cancelled" | "skipped";
                from?: string;
                to?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "endpoint_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "event_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "event_type": "event_type",
                     *             "status": "pending",
                     *             "attempt_count": 1,
                     *             "next_attempt_at": "2026-01-15T09:30:00.000Z",
                     *             "last_status_code": 1,
                     *             "last_error": "last_error",
                     *             "succeeded_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "limit": 1,
                     *           "offset": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "has_next_page": true,
                     *           "next_cursor": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70"
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: {
                                /** Format: uuid */
                                id: string;
                                /** Format: uuid */
                                endpoint_id: string;
                                /** Format: uuid */
                                event_id: string;
                                event_type: string;
                                /**
                                 * @description skipped: the event happened while the endpoint was disabled; cancelled: it was queued when the endpoint was disabled. Recover sends both, and exhausted ones, again.
                                 * @enum {string}
                                 */
                                status: "pending" | "sending" | "succeeded" | "exhausted" | "cancelled" | "skipped";
                                attempt_count: number;
                                next_attempt_at: string | null;
                                last_status_code: number | null;
                                last_error: string | null;
                                succeeded_at: string | null;
                                /** Format: date-time */
                                created_at: string;
                                /** Format: date-time */
                                updated_at: string;
                            }[];
                            meta: {
                                limit: number;
                                offset: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description whether items follow this page (page on with `offset` + `limit`), past the capped `total` too */
                                has_next_page: boolean;
                                /** @description pass as `cursor` for the next page; null on the last page */
                                next_cursor: string | null;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getNotificationsDeliveriesById: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "endpoint_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "event_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "event_type": "event_type",
                     *         "status": "pending",
                     *         "attempt_count": 1,
                     *         "next_attempt_at": "2026-01-15T09:30:00.000Z",
                     *         "last_status_code": 1,
                     *         "last_error": "last_error",
                     *         "succeeded_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z",
                     *         "attempts": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "attempt_number": 1,
                     *             "trigger": "scheduled",
                     *             "url": "https://hooks.example.com/tranche",
                     *             "status_code": 1,
                     *             "duration_ms": 1,
                     *             "response_excerpt": "response_excerpt",
                     *             "error_kind": "timeout",
                     *             "error_message": "error_message",
                     *             "created_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ]
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** Format: uuid */
                            id: string;
                            /** Format: uuid */
                            endpoint_id: string;
                            /** Format: uuid */
                            event_id: string;
                            event_type: string;
                            /**
                             * @description skipped: the event happened while the endpoint was disabled; cancelled: it was queued when the endpoint was disabled. Recover sends both, and exhausted ones, again.
                             * @enum {string}
                             */
                            status: "pending" | "sending" | "succeeded" | "exhausted" | "cancelled" | "skipped";
                            attempt_count: number;
                            next_attempt_at: string | null;
                            last_status_code: number | null;
                            last_error: string | null;
                            succeeded_at: string | null;
                            /** Format: date-time */
                            created_at: string;
                            /** Format: date-time */
                            updated_at: string;
                            attempts: {
                                /** Format: uuid */
                                id: string;
                                attempt_number: number;
                                /** @enum {string} */
                                trigger: "scheduled" | "manual";
                                url: string;
                                status_code: number | null;
                                duration_ms: number;
                                response_excerpt: string | null;
                                /** @description interrupted: the worker shut down before the endpoint answered; the delivery is due again at once. secret: not sent, a signing secret of the endpoint cannot be unsealed (its master key left the keyring); retried on the schedule */
                                error_kind: ("timeout" | "dns" | "connect" | "tls" | "http" | "blocked" | "interrupted" | "secret") | null;
                                error_message: string | null;
                                /** Format: date-time */
                                created_at: string;
                            }[];
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postNotificationsDeliveriesByIdRetry: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "attempt_number": 1,
                     *         "trigger": "scheduled",
                     *         "url": "https://hooks.example.com/tranche",
                     *         "status_code": 1,
                     *         "duration_ms": 1,
                     *         "response_excerpt": "response_excerpt",
                     *         "error_kind": "timeout",
                     *         "error_message": "error_message",
                     *         "created_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** Format: uuid */
                            id: string;
                            attempt_number: number;
                            /** @enum {string} */
                            trigger: "scheduled" | "manual";
                            url: string;
                            status_code: number | null;
                            duration_ms: number;
                            response_excerpt: string | null;
                            /** @description interrupted: the worker shut down before the endpoint answered; the delivery is due again at once. secret: not sent, a signing secret of the endpoint cannot be unsealed (its master key left the keyring); retried on the schedule */
                            error_kind: ("timeout" | "dns" | "connect" | "tls" | "http" | "blocked" | "interrupted" | "secret") | null;
                            error_message: string | null;
                            /** Format: date-time */
                            created_at: string;
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIssuance: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "service": "service",
                     *         "description": "description",
                     *         "version": "version",
                     *         "started_at": "started_at",
                     *         "docs_url": "docs_url"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            service: string;
                            description: string;
                            version: string;
                            started_at: string;
                            docs_url: string;
                        };
                    };
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIssuanceHealth: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIssuanceOfferings: {
        parameters: {
            query?: {
                page?: number;
                limit?: number;
                status?: "active" | "open" | "paused" | "closed";
                exemption_type?: components["schemas"]["ExemptionTypeInput"];
                sort_by?: "created_at" | "deadline" | "name" | "target_amount" | "opened_at";
                sort_order?: "asc" | "desc";
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "name": "Series A Preferred",
                     *             "issuer": {
                     *               "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *               "legal_name": "legal_name"
                     *             },
                     *             "exemption_type": "reg_d_506b",
                     *             "amounts": {
                     *               "target": "target",
                     *               "maximum": "1000.00",
                     *               "raised": "raised",
                     *               "remaining": "remaining",
                     *               "currency": "USD"
                     *             },
                     *             "investment": {
                     *               "minimum": "1000.00",
                     *               "maximum": "1000.00"
                     *             },
                     *             "investors": {
                     *               "total": 1,
                     *               "accredited": 1,
                     *               "non_accredited": 1
                     *             },
                     *             "deadline": "deadline",
                     *             "status": "draft",
                     *             "opened_at": "2026-01-15T09:30:00.000Z",
                     *             "closed_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "page": 1,
                     *           "limit": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "total_pages": 1,
                     *           "has_next_page": true,
                     *           "has_previous_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["Offering"][];
                            meta: {
                                page: number;
                                limit: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description pages of `limit` in `total` (so at most 1 000 / `limit` when `total_capped`) */
                                total_pages: number;
                                /** @description whether items follow this page (true past `total_pages` too when `total_capped`) */
                                has_next_page: boolean;
                                has_previous_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIssuanceOfferingsById: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "name": "Series A Preferred",
                     *         "issuer": {
                     *           "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "legal_name": "legal_name"
                     *         },
                     *         "exemption_type": "reg_d_506b",
                     *         "amounts": {
                     *           "target": "target",
                     *           "maximum": "1000.00",
                     *           "raised": "raised",
                     *           "remaining": "remaining",
                     *           "currency": "USD"
                     *         },
                     *         "investment": {
                     *           "minimum": "1000.00",
                     *           "maximum": "1000.00"
                     *         },
                     *         "investors": {
                     *           "total": 1,
                     *           "accredited": 1,
                     *           "non_accredited": 1
                     *         },
                     *         "deadline": "deadline",
                     *         "status": "draft",
                     *         "opened_at": "2026-01-15T09:30:00.000Z",
                     *         "closed_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Offering"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIssuanceOfferingsByIdDocuments: {
        parameters: {
            query?: {
                page?: number;
                limit?: number;
            };
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "kind": "ppm",
                     *             "title": "title",
                     *             "version": 1,
                     *             "content_type": "content_type",
                     *             "size_bytes": 1,
                     *             "sha256": "sha256",
                     *             "url": "https://hooks.example.com/tranche",
                     *             "created_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "page": 1,
                     *           "limit": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "total_pages": 1,
                     *           "has_next_page": true,
                     *           "has_previous_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["OfferingDocument"][];
                            meta: {
                                page: number;
                                limit: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description pages of `limit` in `total` (so at most 1 000 / `limit` when `total_capped`) */
                                total_pages: number;
                                /** @description whether items follow this page (true past `total_pages` too when `total_capped`) */
                                has_next_page: boolean;
                                has_previous_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIssuanceOfferingsByIdSecurities: {
        parameters: {
            query?: {
                page?: number;
                limit?: number;
                category?: components["schemas"]["SecurityCategoryInput"];
            };
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "name": "Series A Preferred",
                     *             "category": "equity",
                     *             "price_per_unit": "1000.00",
                     *             "currency": "USD",
                     *             "units_authorized": 1,
                     *             "units_available": 1,
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "page": 1,
                     *           "limit": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "total_pages": 1,
                     *           "has_next_page": true,
                     *           "has_previous_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["SecurityClass"][];
                            meta: {
                                page: number;
                                limit: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description pages of `limit` in `total` (so at most 1 000 / `limit` when `total_capped`) */
                                total_pages: number;
                                /** @description whether items follow this page (true past `total_pages` too when `total_capped`) */
                                has_next_page: boolean;
                                has_previous_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIssuanceSecurities: {
        parameters: {
            query?: {
                page?: number;
                limit?: number;
                offering_id?: string;
                category?: components["schemas"]["SecurityCategoryInput"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "name": "Series A Preferred",
                     *             "category": "equity",
                     *             "price_per_unit": "1000.00",
                     *             "currency": "USD",
                     *             "units_authorized": 1,
                     *             "units_available": 1,
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "page": 1,
                     *           "limit": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "total_pages": 1,
                     *           "has_next_page": true,
                     *           "has_previous_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["SecurityClass"][];
                            meta: {
                                page: number;
                                limit: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description pages of `limit` in `total` (so at most 1 000 / `limit` when `total_capped`) */
                                total_pages: number;
                                /** @description whether items follow this page (true past `total_pages` too when `total_capped`) */
                                has_next_page: boolean;
                                has_previous_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIssuanceSecuritiesById: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "name": "Series A Preferred",
                     *         "category": "equity",
                     *         "price_per_unit": "1000.00",
                     *         "currency": "USD",
                     *         "units_authorized": 1,
                     *         "units_available": 1,
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["SecurityClass"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postIssuanceOfferingsByOfferingIdSubscriptions: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                offeringId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "securityClassId": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                 *       "unitsSubscribed": 1,
                 *       "trancheId": "tranche id",
                 *       "paymentMethod": "card",
                 *       "accreditationStatus": "accredited",
                 *       "suitabilityConfirmed": true,
                 *       "riskAcknowledgmentSigned": true,
                 *       "annualIncome": "1000.00",
                 *       "netWorth": "1000.00",
                 *       "otherRegCfInvestments": "1000.00"
                 *     }
                 */
                "application/json": components["schemas"]["CreateSubscriptionRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "units_subscribed": 1,
                     *         "price_per_unit": "1000.00",
                     *         "amount": "1000.00",
                     *         "currency": "USD",
                     *         "tranche_id": "tranche_id",
                     *         "payment_method": "card",
                     *         "accreditation_status": "accredited",
                     *         "suitability_confirmed": true,
                     *         "risk_acknowledgment_signed": true,
                     *         "status": "draft",
                     *         "payment_status": "none",
                     *         "signed_at": "signed_at",
                     *         "funded_at": "2026-01-15T09:30:00.000Z",
                     *         "approved_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z",
                     *         "cancelled_at": "2026-01-15T09:30:00.000Z",
                     *         "cancel_reason": "cancel_reason",
                     *         "review_reason": "review_reason",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Subscription"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIssuanceSubscriptions: {
        parameters: {
            query?: {
                page?: number;
                limit?: number;
                status?: components["schemas"]["SubscriptionStatusInput"];
                offering_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "units_subscribed": 1,
                     *             "price_per_unit": "1000.00",
                     *             "amount": "1000.00",
                     *             "currency": "USD",
                     *             "tranche_id": "tranche_id",
                     *             "payment_method": "card",
                     *             "accreditation_status": "accredited",
                     *             "suitability_confirmed": true,
                     *             "risk_acknowledgment_signed": true,
                     *             "status": "draft",
                     *             "payment_status": "none",
                     *             "signed_at": "signed_at",
                     *             "funded_at": "2026-01-15T09:30:00.000Z",
                     *             "approved_at": "2026-01-15T09:30:00.000Z",
                     *             "completed_at": "2026-01-15T09:30:00.000Z",
                     *             "cancelled_at": "2026-01-15T09:30:00.000Z",
                     *             "cancel_reason": "cancel_reason",
                     *             "review_reason": "review_reason",
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "page": 1,
                     *           "limit": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "total_pages": 1,
                     *           "has_next_page": true,
                     *           "has_previous_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["Subscription"][];
                            meta: {
                                page: number;
                                limit: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description pages of `limit` in `total` (so at most 1 000 / `limit` when `total_capped`) */
                                total_pages: number;
                                /** @description whether items follow this page (true past `total_pages` too when `total_capped`) */
                                has_next_page: boolean;
                                has_previous_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIssuanceSubscriptionsById: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "units_subscribed": 1,
                     *         "price_per_unit": "1000.00",
                     *         "amount": "1000.00",
                     *         "currency": "USD",
                     *         "tranche_id": "tranche_id",
                     *         "payment_method": "card",
                     *         "accreditation_status": "accredited",
                     *         "suitability_confirmed": true,
                     *         "risk_acknowledgment_signed": true,
                     *         "status": "draft",
                     *         "payment_status": "none",
                     *         "signed_at": "signed_at",
                     *         "funded_at": "2026-01-15T09:30:00.000Z",
                     *         "approved_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z",
                     *         "cancelled_at": "2026-01-15T09:30:00.000Z",
                     *         "cancel_reason": "cancel_reason",
                     *         "review_reason": "review_reason",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Subscription"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    deleteIssuanceSubscriptionsById: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "units_subscribed": 1,
                     *         "price_per_unit": "1000.00",
                     *         "amount": "1000.00",
                     *         "currency": "USD",
                     *         "tranche_id": "tranche_id",
                     *         "payment_method": "card",
                     *         "accreditation_status": "accredited",
                     *         "suitability_confirmed": true,
                     *         "risk_acknowledgment_signed": true,
                     *         "status": "draft",
                     *         "payment_status": "none",
                     *         "signed_at": "signed_at",
                     *         "funded_at": "2026-01-15T09:30:00.000Z",
                     *         "approved_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z",
                     *         "cancelled_at": "2026-01-15T09:30:00.000Z",
                     *         "cancel_reason": "cancel_reason",
                     *         "review_reason": "review_reason",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Subscription"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postIssuanceSubscriptionsByIdSignAgreement: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "signerName": "Ada Lovelace",
                 *       "consent": true
                 *     }
                 */
                "application/json": components["schemas"]["SignSubscriptionRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "units_subscribed": 1,
                     *         "price_per_unit": "1000.00",
                     *         "amount": "1000.00",
                     *         "currency": "USD",
                     *         "tranche_id": "tranche_id",
                     *         "payment_method": "card",
                     *         "accreditation_status": "accredited",
                     *         "suitability_confirmed": true,
                     *         "risk_acknowledgment_signed": true,
                     *         "status": "draft",
                     *         "payment_status": "none",
                     *         "signed_at": "signed_at",
                     *         "funded_at": "2026-01-15T09:30:00.000Z",
                     *         "approved_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z",
                     *         "cancelled_at": "2026-01-15T09:30:00.000Z",
                     *         "cancel_reason": "cancel_reason",
                     *         "review_reason": "review_reason",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Subscription"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postIssuanceSubscriptionsByIdCreateCheckoutSession: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                /**
                 * @example {
                 *       "successUrl": "https://app.example.com/return",
                 *       "cancelUrl": "https://app.example.com/return"
                 *     }
                 */
                "application/json": components["schemas"]["CreateCheckoutRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "session_id": "session_id",
                     *         "checkout_url": "checkout_url",
                     *         "amount": "1000.00",
                     *         "currency": "USD"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Checkout"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postIssuancePaymentsStripeWebhook: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequest"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIssuanceShares: {
        parameters: {
            query?: {
                page?: number;
                limit?: number;
                security_class_id?: string;
                offering_id?: string;
                status?: "active" | "transferred" | "converted" | "redeemed" | "cancelled";
                restricted?: "true" | "false";
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "units": 1,
                     *             "price_per_unit": "1000.00",
                     *             "total_cost_basis": "1000.00",
                     *             "currency": "USD",
                     *             "acquisition_type": "primary",
                     *             "acquisition_date": "acquisition_date",
                     *             "holding_period_end_date": "holding_period_end_date",
                     *             "restricted": true,
                     *             "restricted_until": "restricted_until",
                     *             "status": "active",
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z",
                     *             "security": {
                     *               "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *               "name": "Series A Preferred",
                     *               "category": "equity"
                     *             },
                     *             "offering": {
                     *               "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *               "name": "Series A Preferred"
                     *             }
                     *           }
                     *         ],
                     *         "meta": {
                     *           "page": 1,
                     *           "limit": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "total_pages": 1,
                     *           "has_next_page": true,
                     *           "has_previous_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: {
                                /** Format: uuid */
                                id: string;
                                /** Format: uuid */
                                security_class_id: string;
                                units: number;
                                price_per_unit: string;
                                total_cost_basis: string;
                                currency: string;
                                /** @enum {string} */
                                acquisition_type: "primary";
                                acquisition_date: string;
                                holding_period_end_date: string | null;
                                restricted: boolean;
                                restricted_until: string | null;
                                /** @enum {string} */
                                status: "active" | "transferred" | "converted" | "redeemed" | "cancelled";
                                /** Format: date-time */
                                created_at: string;
                                /** Format: date-time */
                                updated_at: string;
                                security: {
                                    /** Format: uuid */
                                    id: string;
                                    name: string;
                                    category: components["schemas"]["SecurityCategory"];
                                };
                                offering: {
                                    /** Format: uuid */
                                    id: string;
                                    name: string;
                                };
                            }[];
                            meta: {
                                page: number;
                                limit: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description pages of `limit` in `total` (so at most 1 000 / `limit` when `total_capped`) */
                                total_pages: number;
                                /** @description whether items follow this page (true past `total_pages` too when `total_capped`) */
                                has_next_page: boolean;
                                has_previous_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIssuanceSharesById: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "units": 1,
                     *         "price_per_unit": "1000.00",
                     *         "total_cost_basis": "1000.00",
                     *         "currency": "USD",
                     *         "acquisition_type": "primary",
                     *         "acquisition_date": "acquisition_date",
                     *         "holding_period_end_date": "holding_period_end_date",
                     *         "restricted": true,
                     *         "restricted_until": "restricted_until",
                     *         "status": "active",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z",
                     *         "security": {
                     *           "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "name": "Series A Preferred",
                     *           "category": "equity"
                     *         },
                     *         "offering": {
                     *           "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "name": "Series A Preferred"
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** Format: uuid */
                            id: string;
                            /** Format: uuid */
                            security_class_id: string;
                            units: number;
                            price_per_unit: string;
                            total_cost_basis: string;
                            currency: string;
                            /** @enum {string} */
                            acquisition_type: "primary";
                            acquisition_date: string;
                            holding_period_end_date: string | null;
                            restricted: boolean;
                            restricted_until: string | null;
                            /** @enum {string} */
                            status: "active" | "transferred" | "converted" | "redeemed" | "cancelled";
                            /** Format: date-time */
                            created_at: string;
                            /** Format: date-time */
                            updated_at: string;
                            security: {
                                /** Format: uuid */
                                id: string;
                                name: string;
                                category: components["schemas"]["SecurityCategory"];
                            };
                            offering: {
                                /** Format: uuid */
                                id: string;
                                name: string;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            403: components["responses"]["Forbidden"];
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminKycVerifications: {
        parameters: {
            query?: {
                limit?: number;
                offset?: number;
                /** @description `next_cursor` of the previous page; `offset` is then ignored */
                cursor?: string;
                status?: components["schemas"]["KycStatusInput"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "verification_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "status": "pending",
                     *             "checks": {
                     *               "identity": "not_attempted",
                     *               "document": "not_attempted"
                     *             },
                     *             "required_action": {
                     *               "type": "document_scan",
                     *               "url": "https://hooks.example.com/tranche"
                     *             },
                     *             "submitted_at": "2026-01-15T09:30:00.000Z",
                     *             "completed_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "limit": 1,
                     *           "offset": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "has_next_page": true,
                     *           "next_cursor": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70"
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["KycVerification"][];
                            meta: {
                                limit: number;
                                offset: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description whether items follow this page (page on with `offset` + `limit`), past the capped `total` too */
                                has_next_page: boolean;
                                /** @description pass as `cursor` for the next page; null on the last page */
                                next_cursor: string | null;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminKycVerificationsByIdApprove: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                /**
                 * @example {
                 *       "reason": "reason"
                 *     }
                 */
                "application/json": {
                    reason?: string;
                } | null;
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "verification_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "status": "pending",
                     *         "checks": {
                     *           "identity": "not_attempted",
                     *           "document": "not_attempted"
                     *         },
                     *         "required_action": {
                     *           "type": "document_scan",
                     *           "url": "https://hooks.example.com/tranche"
                     *         },
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["KycVerification"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminKycVerificationsByIdReject: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                /**
                 * @example {
                 *       "reason": "reason"
                 *     }
                 */
                "application/json": {
                    reason?: string;
                } | null;
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "verification_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "status": "pending",
                     *         "checks": {
                     *           "identity": "not_attempted",
                     *           "document": "not_attempted"
                     *         },
                     *         "required_action": {
                     *           "type": "document_scan",
                     *           "url": "https://hooks.example.com/tranche"
                     *         },
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["KycVerification"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminAccreditations: {
        parameters: {
            query?: {
                limit?: number;
                offset?: number;
                /** @description `next_cursor` of the previous page; `offset` is then ignored */
                cursor?: string;
                review_status?: components["schemas"]["AccreditationReviewStatusInput"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "accreditation_status": "pending",
                     *             "accreditation_basis": "income",
                     *             "review_status": "not_required",
                     *             "verified": true,
                     *             "review_reason": "review_reason",
                     *             "submitted_at": "2026-01-15T09:30:00.000Z",
                     *             "reviewed_at": "2026-01-15T09:30:00.000Z",
                     *             "expires_at": "2026-01-15T09:30:00.000Z",
                     *             "documents": [
                     *               {
                     *                 "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *                 "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *                 "document_type": "income_proof",
                     *                 "file_name": "file_name",
                     *                 "content_type": "content_type",
                     *                 "file_size_bytes": 1,
                     *                 "sha256": "sha256",
                     *                 "status": "upload_pending",
                     *                 "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *                 "created_at": "2026-01-15T09:30:00.000Z"
                     *               }
                     *             ],
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "limit": 1,
                     *           "offset": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "has_next_page": true,
                     *           "next_cursor": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70"
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["Accreditation"][];
                            meta: {
                                limit: number;
                                offset: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description whether items follow this page (page on with `offset` + `limit`), past the capped `total` too */
                                has_next_page: boolean;
                                /** @description pass as `cursor` for the next page; null on the last page */
                                next_cursor: string | null;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminAccreditationsDocumentsByIdDownload: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "url": "https://hooks.example.com/tranche",
                     *         "expires_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            url: string;
                            /** Format: date-time */
                            expires_at: string;
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminAccreditationsByIdStartReview: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                /**
                 * @example {
                 *       "reason": "reason"
                 *     }
                 */
                "application/json": {
                    reason?: string;
                } | null;
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "accreditation_status": "pending",
                     *         "accreditation_basis": "income",
                     *         "review_status": "not_required",
                     *         "verified": true,
                     *         "review_reason": "review_reason",
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "reviewed_at": "2026-01-15T09:30:00.000Z",
                     *         "expires_at": "2026-01-15T09:30:00.000Z",
                     *         "documents": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "document_type": "income_proof",
                     *             "file_name": "file_name",
                     *             "content_type": "content_type",
                     *             "file_size_bytes": 1,
                     *             "sha256": "sha256",
                     *             "status": "upload_pending",
                     *             "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Accreditation"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminAccreditationsByIdRequestInfo: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "reason": "reason"
                 *     }
                 */
                "application/json": {
                    reason: string;
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "accreditation_status": "pending",
                     *         "accreditation_basis": "income",
                     *         "review_status": "not_required",
                     *         "verified": true,
                     *         "review_reason": "review_reason",
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "reviewed_at": "2026-01-15T09:30:00.000Z",
                     *         "expires_at": "2026-01-15T09:30:00.000Z",
                     *         "documents": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "document_type": "income_proof",
                     *             "file_name": "file_name",
                     *             "content_type": "content_type",
                     *             "file_size_bytes": 1,
                     *             "sha256": "sha256",
                     *             "status": "upload_pending",
                     *             "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Accreditation"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminAccreditationsByIdApprove: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                /**
                 * @example {
                 *       "reason": "reason"
                 *     }
                 */
                "application/json": {
                    reason?: string;
                } | null;
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "accreditation_status": "pending",
                     *         "accreditation_basis": "income",
                     *         "review_status": "not_required",
                     *         "verified": true,
                     *         "review_reason": "review_reason",
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "reviewed_at": "2026-01-15T09:30:00.000Z",
                     *         "expires_at": "2026-01-15T09:30:00.000Z",
                     *         "documents": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "document_type": "income_proof",
                     *             "file_name": "file_name",
                     *             "content_type": "content_type",
                     *             "file_size_bytes": 1,
                     *             "sha256": "sha256",
                     *             "status": "upload_pending",
                     *             "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Accreditation"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminAccreditationsByIdDeny: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "reason": "reason"
                 *     }
                 */
                "application/json": {
                    reason: string;
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "accreditation_status": "pending",
                     *         "accreditation_basis": "income",
                     *         "review_status": "not_required",
                     *         "verified": true,
                     *         "review_reason": "review_reason",
                     *         "submitted_at": "2026-01-15T09:30:00.000Z",
                     *         "reviewed_at": "2026-01-15T09:30:00.000Z",
                     *         "expires_at": "2026-01-15T09:30:00.000Z",
                     *         "documents": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "accreditation_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "document_type": "income_proof",
                     *             "file_name": "file_name",
                     *             "content_type": "content_type",
                     *             "file_size_bytes": 1,
                     *             "sha256": "sha256",
                     *             "status": "upload_pending",
                     *             "uploaded_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Accreditation"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminIssuers: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "legalName": "Acme Holdings Inc."
                 *     }
                 */
                "application/json": components["schemas"]["CreateIssuerRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "legal_name": "legal_name",
                     *         "formation_date": "formation_date",
                     *         "country_of_formation": "country_of_formation",
                     *         "country_subdivision_of_formation": "country_subdivision_of_formation",
                     *         "created_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** Format: uuid */
                            id: string;
                            /** Format: uuid */
                            org_id: string;
                            legal_name: string;
                            formation_date: string | null;
                            country_of_formation: string | null;
                            country_subdivision_of_formation: string | null;
                            /** Format: date-time */
                            created_at: string;
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminOfferings: {
        parameters: {
            query?: {
                page?: number;
                limit?: number;
                status?: components["schemas"]["OfferingStatusInput"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "name": "Series A Preferred",
                     *             "issuer": {
                     *               "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *               "legal_name": "legal_name"
                     *             },
                     *             "exemption_type": "reg_d_506b",
                     *             "amounts": {
                     *               "target": "target",
                     *               "maximum": "1000.00",
                     *               "raised": "raised",
                     *               "remaining": "remaining",
                     *               "currency": "USD"
                     *             },
                     *             "investment": {
                     *               "minimum": "1000.00",
                     *               "maximum": "1000.00"
                     *             },
                     *             "investors": {
                     *               "total": 1,
                     *               "accredited": 1,
                     *               "non_accredited": 1
                     *             },
                     *             "deadline": "deadline",
                     *             "status": "draft",
                     *             "opened_at": "2026-01-15T09:30:00.000Z",
                     *             "closed_at": "2026-01-15T09:30:00.000Z",
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "page": 1,
                     *           "limit": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "total_pages": 1,
                     *           "has_next_page": true,
                     *           "has_previous_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["Offering"][];
                            meta: {
                                page: number;
                                limit: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description pages of `limit` in `total` (so at most 1 000 / `limit` when `total_capped`) */
                                total_pages: number;
                                /** @description whether items follow this page (true past `total_pages` too when `total_capped`) */
                                has_next_page: boolean;
                                has_previous_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminOfferings: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "issuerId": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                 *       "name": "Series A Preferred",
                 *       "exemptionType": "reg_d_506b",
                 *       "currency": "USD",
                 *       "targetAmount": "1000.00",
                 *       "maximumAmount": "1000.00",
                 *       "minimumInvestment": "1000.00",
                 *       "maximumInvestment": "1000.00",
                 *       "deadline": "1990-07-14"
                 *     }
                 */
                "application/json": components["schemas"]["CreateOfferingRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "name": "Series A Preferred",
                     *         "issuer": {
                     *           "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "legal_name": "legal_name"
                     *         },
                     *         "exemption_type": "reg_d_506b",
                     *         "amounts": {
                     *           "target": "target",
                     *           "maximum": "1000.00",
                     *           "raised": "raised",
                     *           "remaining": "remaining",
                     *           "currency": "USD"
                     *         },
                     *         "investment": {
                     *           "minimum": "1000.00",
                     *           "maximum": "1000.00"
                     *         },
                     *         "investors": {
                     *           "total": 1,
                     *           "accredited": 1,
                     *           "non_accredited": 1
                     *         },
                     *         "deadline": "deadline",
                     *         "status": "draft",
                     *         "opened_at": "2026-01-15T09:30:00.000Z",
                     *         "closed_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Offering"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    patchAdminOfferingsById: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "name": "Series A Preferred",
                 *       "targetAmount": "1000.00",
                 *       "maximumAmount": "1000.00",
                 *       "minimumInvestment": "1000.00",
                 *       "maximumInvestment": "1000.00",
                 *       "deadline": "1990-07-14"
                 *     }
                 */
                "application/json": components["schemas"]["UpdateOfferingRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "name": "Series A Preferred",
                     *         "issuer": {
                     *           "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "legal_name": "legal_name"
                     *         },
                     *         "exemption_type": "reg_d_506b",
                     *         "amounts": {
                     *           "target": "target",
                     *           "maximum": "1000.00",
                     *           "raised": "raised",
                     *           "remaining": "remaining",
                     *           "currency": "USD"
                     *         },
                     *         "investment": {
                     *           "minimum": "1000.00",
                     *           "maximum": "1000.00"
                     *         },
                     *         "investors": {
                     *           "total": 1,
                     *           "accredited": 1,
                     *           "non_accredited": 1
                     *         },
                     *         "deadline": "deadline",
                     *         "status": "draft",
                     *         "opened_at": "2026-01-15T09:30:00.000Z",
                     *         "closed_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Offering"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminOfferingsByIdOpen: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "name": "Series A Preferred",
                     *         "issuer": {
                     *           "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "legal_name": "legal_name"
                     *         },
                     *         "exemption_type": "reg_d_506b",
                     *         "amounts": {
                     *           "target": "target",
                     *           "maximum": "1000.00",
                     *           "raised": "raised",
                     *           "remaining": "remaining",
                     *           "currency": "USD"
                     *         },
                     *         "investment": {
                     *           "minimum": "1000.00",
                     *           "maximum": "1000.00"
                     *         },
                     *         "investors": {
                     *           "total": 1,
                     *           "accredited": 1,
                     *           "non_accredited": 1
                     *         },
                     *         "deadline": "deadline",
                     *         "status": "draft",
                     *         "opened_at": "2026-01-15T09:30:00.000Z",
                     *         "closed_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Offering"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminOfferingsByIdPause: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "name": "Series A Preferred",
                     *         "issuer": {
                     *           "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "legal_name": "legal_name"
                     *         },
                     *         "exemption_type": "reg_d_506b",
                     *         "amounts": {
                     *           "target": "target",
                     *           "maximum": "1000.00",
                     *           "raised": "raised",
                     *           "remaining": "remaining",
                     *           "currency": "USD"
                     *         },
                     *         "investment": {
                     *           "minimum": "1000.00",
                     *           "maximum": "1000.00"
                     *         },
                     *         "investors": {
                     *           "total": 1,
                     *           "accredited": 1,
                     *           "non_accredited": 1
                     *         },
                     *         "deadline": "deadline",
                     *         "status": "draft",
                     *         "opened_at": "2026-01-15T09:30:00.000Z",
                     *         "closed_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Offering"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminOfferingsByIdClose: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "name": "Series A Preferred",
                     *         "issuer": {
                     *           "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "legal_name": "legal_name"
                     *         },
                     *         "exemption_type": "reg_d_506b",
                     *         "amounts": {
                     *           "target": "target",
                     *           "maximum": "1000.00",
                     *           "raised": "raised",
                     *           "remaining": "remaining",
                     *           "currency": "USD"
                     *         },
                     *         "investment": {
                     *           "minimum": "1000.00",
                     *           "maximum": "1000.00"
                     *         },
                     *         "investors": {
                     *           "total": 1,
                     *           "accredited": 1,
                     *           "non_accredited": 1
                     *         },
                     *         "deadline": "deadline",
                     *         "status": "draft",
                     *         "opened_at": "2026-01-15T09:30:00.000Z",
                     *         "closed_at": "2026-01-15T09:30:00.000Z",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Offering"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminOfferingsByIdSecurities: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "name": "Series A Preferred",
                 *       "category": "equity",
                 *       "pricePerUnit": "1000.00",
                 *       "unitsAuthorized": 1
                 *     }
                 */
                "application/json": components["schemas"]["CreateSecurityClassRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "name": "Series A Preferred",
                     *         "category": "equity",
                     *         "price_per_unit": "1000.00",
                     *         "currency": "USD",
                     *         "units_authorized": 1,
                     *         "units_available": 1,
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["SecurityClass"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminOfferingsByIdDocuments: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "kind": "ppm",
                 *       "title": "Private placement memorandum",
                 *       "contentType": "application/pdf",
                 *       "content": "JVBERi0xLjQK"
                 *     }
                 */
                "application/json": components["schemas"]["CreateOfferingDocumentRequestInput"];
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "kind": "ppm",
                     *         "title": "title",
                     *         "version": 1,
                     *         "content_type": "content_type",
                     *         "size_bytes": 1,
                     *         "sha256": "sha256",
                     *         "url": "https://hooks.example.com/tranche",
                     *         "created_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["OfferingDocument"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminSubscriptions: {
        parameters: {
            query?: {
                page?: number;
                limit?: number;
                /** @description `next_cursor` of the previous page; `page` is then ignored */
                cursor?: string;
                status?: components["schemas"]["SubscriptionStatusInput"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "units_subscribed": 1,
                     *             "price_per_unit": "1000.00",
                     *             "amount": "1000.00",
                     *             "currency": "USD",
                     *             "tranche_id": "tranche_id",
                     *             "payment_method": "card",
                     *             "accreditation_status": "accredited",
                     *             "suitability_confirmed": true,
                     *             "risk_acknowledgment_signed": true,
                     *             "status": "draft",
                     *             "payment_status": "none",
                     *             "signed_at": "signed_at",
                     *             "funded_at": "2026-01-15T09:30:00.000Z",
                     *             "approved_at": "2026-01-15T09:30:00.000Z",
                     *             "completed_at": "2026-01-15T09:30:00.000Z",
                     *             "cancelled_at": "2026-01-15T09:30:00.000Z",
                     *             "cancel_reason": "cancel_reason",
                     *             "review_reason": "review_reason",
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "page": 1,
                     *           "limit": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "total_pages": 1,
                     *           "has_next_page": true,
                     *           "has_previous_page": true,
                     *           "next_cursor": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70"
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: components["schemas"]["Subscription"][];
                            meta: {
                                /** @description null when paged by `cursor` */
                                page: number | null;
                                limit: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description pages of `limit` in `total` (so at most 1 000 / `limit` when `total_capped`) */
                                total_pages: number;
                                /** @description whether items follow this page (true past `total_pages` too when `total_capped`) */
                                has_next_page: boolean;
                                has_previous_page: boolean;
                                /** @description pass as `cursor` for the next page; null on the last page */
                                next_cursor: string | null;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminSubscriptionsByIdTimeline: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "from_status": "from_status",
                     *             "to_status": "to_status",
                     *             "actor": "actor",
                     *             "reason": "reason",
                     *             "created_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ]
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: {
                                from_status: string | null;
                                to_status: string;
                                actor: string;
                                reason: string | null;
                                /** Format: date-time */
                                created_at: string;
                            }[];
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminSubscriptionsByIdApprove: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "units_subscribed": 1,
                     *         "price_per_unit": "1000.00",
                     *         "amount": "1000.00",
                     *         "currency": "USD",
                     *         "tranche_id": "tranche_id",
                     *         "payment_method": "card",
                     *         "accreditation_status": "accredited",
                     *         "suitability_confirmed": true,
                     *         "risk_acknowledgment_signed": true,
                     *         "status": "draft",
                     *         "payment_status": "none",
                     *         "signed_at": "signed_at",
                     *         "funded_at": "2026-01-15T09:30:00.000Z",
                     *         "approved_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z",
                     *         "cancelled_at": "2026-01-15T09:30:00.000Z",
                     *         "cancel_reason": "cancel_reason",
                     *         "review_reason": "review_reason",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Subscription"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminSubscriptionsByIdReject: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "reason": "reason"
                 *     }
                 */
                "application/json": {
                    reason: string;
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "offering_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "units_subscribed": 1,
                     *         "price_per_unit": "1000.00",
                     *         "amount": "1000.00",
                     *         "currency": "USD",
                     *         "tranche_id": "tranche_id",
                     *         "payment_method": "card",
                     *         "accreditation_status": "accredited",
                     *         "suitability_confirmed": true,
                     *         "risk_acknowledgment_signed": true,
                     *         "status": "draft",
                     *         "payment_status": "none",
                     *         "signed_at": "signed_at",
                     *         "funded_at": "2026-01-15T09:30:00.000Z",
                     *         "approved_at": "2026-01-15T09:30:00.000Z",
                     *         "completed_at": "2026-01-15T09:30:00.000Z",
                     *         "cancelled_at": "2026-01-15T09:30:00.000Z",
                     *         "cancel_reason": "cancel_reason",
                     *         "review_reason": "review_reason",
                     *         "created_at": "2026-01-15T09:30:00.000Z",
                     *         "updated_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: components["schemas"]["Subscription"];
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminAudit: {
        parameters: {
            query?: {
                limit?: number;
                offset?: number;
                subject_type?: string;
                subject_id?: string;
                actor_kind?: "user" | "org_admin" | "platform_staff" | "api_key" | "system";
                actor_id?: string;
                action?: string;
                from?: string;
                to?: string;
                org_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "chain_id": "chain_id",
                     *             "seq": 1,
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "actor": {
                     *               "kind": "user",
                     *               "id": "id"
                     *             },
                     *             "action": "action",
                     *             "subject": {
                     *               "type": "type",
                     *               "id": "id"
                     *             },
                     *             "related": [
                     *               "related"
                     *             ],
                     *             "request_id": "request_id",
                     *             "state_digest": "state_digest",
                     *             "details": {},
                     *             "occurred_at": "2026-01-15T09:30:00.000Z",
                     *             "prev_hash": "prev_hash",
                     *             "hash": "hash"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "limit": 1,
                     *           "offset": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "has_next_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: {
                                /** Format: uuid */
                                id: string;
                                chain_id: string;
                                seq: number;
                                org_id: string | null;
                                actor: {
                                    /** @enum {string} */
                                    kind: "user" | "org_admin" | "platform_staff" | "api_key" | "system";
                                    id: string | null;
                                };
                                action: string;
                                subject: {
                                    type: string;
                                    id: string;
                                };
                                related: string[];
                                request_id: string | null;
                                /** @description HMAC-SHA256 of the before/after state, under a key only the platform holds */
                                state_digest: string | null;
                                details: {
                                    [key: string]: unknown;
                                };
                                /** Format: date-time */
                                occurred_at: string;
                                prev_hash: string;
                                /** @description SHA-256 of the canonical entry, chaining it to prev_hash */
                                hash: string;
                            }[];
                            meta: {
                                limit: number;
                                offset: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description whether items follow this page (page on with `offset` + `limit`), past the capped `total` too */
                                has_next_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminAuditSubjectsByTypeById: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                type: string;
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "chain_id": "chain_id",
                     *             "seq": 1,
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "actor": {
                     *               "kind": "user",
                     *               "id": "id"
                     *             },
                     *             "action": "action",
                     *             "subject": {
                     *               "type": "type",
                     *               "id": "id"
                     *             },
                     *             "related": [
                     *               "related"
                     *             ],
                     *             "request_id": "request_id",
                     *             "state_digest": "state_digest",
                     *             "details": {},
                     *             "occurred_at": "2026-01-15T09:30:00.000Z",
                     *             "prev_hash": "prev_hash",
                     *             "hash": "hash"
                     *           }
                     *         ]
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: {
                                /** Format: uuid */
                                id: string;
                                chain_id: string;
                                seq: number;
                                org_id: string | null;
                                actor: {
                                    /** @enum {string} */
                                    kind: "user" | "org_admin" | "platform_staff" | "api_key" | "system";
                                    id: string | null;
                                };
                                action: string;
                                subject: {
                                    type: string;
                                    id: string;
                                };
                                related: string[];
                                request_id: string | null;
                                /** @description HMAC-SHA256 of the before/after state, under a key only the platform holds */
                                state_digest: string | null;
                                details: {
                                    [key: string]: unknown;
                                };
                                /** Format: date-time */
                                occurred_at: string;
                                prev_hash: string;
                                /** @description SHA-256 of the canonical entry, chaining it to prev_hash */
                                hash: string;
                            }[];
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            404: components["responses"]["NotFound"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminAuditVerify: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "ok": true,
                     *         "chains": [
                     *           {
                     *             "chain_id": "chain_id",
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "entries": 1,
                     *             "anchored_seq": 1,
                     *             "ok": true,
                     *             "broken": {
                     *               "seq": 1,
                     *               "entry_id": "entry_id",
                     *               "reason": "reason"
                     *             }
                     *           }
                     *         ]
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            ok: boolean;
                            chains: {
                                chain_id: string;
                                org_id: string | null;
                                entries: number;
                                anchored_seq: number;
                                ok: boolean;
                                broken?: {
                                    seq: number;
                                    entry_id: string | null;
                                    reason: string;
                                };
                            }[];
                        };
                    };
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityAudit: {
        parameters: {
            query?: {
                limit?: number;
                offset?: number;
                subject_type?: string;
                subject_id?: string;
                actor_kind?: "user" | "org_admin" | "platform_staff" | "api_key" | "system";
                actor_id?: string;
                action?: string;
                from?: string;
                to?: string;
                org_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "chain_id": "chain_id",
                     *             "seq": 1,
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "actor": {
                     *               "kind": "user",
                     *               "id": "id"
                     *             },
                     *             "action": "action",
                     *             "subject": {
                     *               "type": "type",
                     *               "id": "id"
                     *             },
                     *             "related": [
                     *               "related"
                     *             ],
                     *             "request_id": "request_id",
                     *             "state_digest": "state_digest",
                     *             "details": {},
                     *             "occurred_at": "2026-01-15T09:30:00.000Z",
                     *             "prev_hash": "prev_hash",
                     *             "hash": "hash"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "limit": 1,
                     *           "offset": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "has_next_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: {
                                /** Format: uuid */
                                id: string;
                                chain_id: string;
                                seq: number;
                                org_id: string | null;
                                actor: {
                                    /** @enum {string} */
                                    kind: "user" | "org_admin" | "platform_staff" | "api_key" | "system";
                                    id: string | null;
                                };
                                action: string;
                                subject: {
                                    type: string;
                                    id: string;
                                };
                                related: string[];
                                request_id: string | null;
                                /** @description HMAC-SHA256 of the before/after state, under a key only the platform holds */
                                state_digest: string | null;
                                details: {
                                    [key: string]: unknown;
                                };
                                /** Format: date-time */
                                occurred_at: string;
                                prev_hash: string;
                                /** @description SHA-256 of the canonical entry, chaining it to prev_hash */
                                hash: string;
                            }[];
                            meta: {
                                limit: number;
                                offset: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description whether items follow this page (page on with `offset` + `limit`), past the capped `total` too */
                                has_next_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityAuditSubjectsByTypeById: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                type: string;
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "chain_id": "chain_id",
                     *             "seq": 1,
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "actor": {
                     *               "kind": "user",
                     *               "id": "id"
                     *             },
                     *             "action": "action",
                     *             "subject": {
                     *               "type": "type",
                     *               "id": "id"
                     *             },
                     *             "related": [
                     *               "related"
                     *             ],
                     *             "request_id": "request_id",
                     *             "state_digest": "state_digest",
                     *             "details": {},
                     *             "occurred_at": "2026-01-15T09:30:00.000Z",
                     *             "prev_hash": "prev_hash",
                     *             "hash": "hash"
                     *           }
                     *         ]
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: {
                                /** Format: uuid */
                                id: string;
                                chain_id: string;
                                seq: number;
                                org_id: string | null;
                                actor: {
                                    /** @enum {string} */
                                    kind: "user" | "org_admin" | "platform_staff" | "api_key" | "system";
                                    id: string | null;
                                };
                                action: string;
                                subject: {
                                    type: string;
                                    id: string;
                                };
                                related: string[];
                                request_id: string | null;
                                /** @description HMAC-SHA256 of the before/after state, under a key only the platform holds */
                                state_digest: string | null;
                                details: {
                                    [key: string]: unknown;
                                };
                                /** Format: date-time */
                                occurred_at: string;
                                prev_hash: string;
                                /** @description SHA-256 of the canonical entry, chaining it to prev_hash */
                                hash: string;
                            }[];
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            404: components["responses"]["NotFound"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getIdentityAuditVerify: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "ok": true,
                     *         "chains": [
                     *           {
                     *             "chain_id": "chain_id",
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "entries": 1,
                     *             "anchored_seq": 1,
                     *             "ok": true,
                     *             "broken": {
                     *               "seq": 1,
                     *               "entry_id": "entry_id",
                     *               "reason": "reason"
                     *             }
                     *           }
                     *         ]
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            ok: boolean;
                            chains: {
                                chain_id: string;
                                org_id: string | null;
                                entries: number;
                                anchored_seq: number;
                                ok: boolean;
                                broken?: {
                                    seq: number;
                                    entry_id: string | null;
                                    reason: string;
                                };
                            }[];
                        };
                    };
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminSharesByIdCancel: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "reason": "reason",
                 *       "reissue": {
                 *         "units": 1
                 *       }
                 *     }
                 */
                "application/json": {
                    reason: string;
                    reissue?: {
                        units?: number;
                    };
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "cancellation": {
                     *           "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "reason": "reason",
                     *           "created_at": "2026-01-15T09:30:00.000Z"
                     *         },
                     *         "cancelled": {
                     *           "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "subscription_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "units": 1,
                     *           "total_cost_basis": "1000.00",
                     *           "status": "status",
                     *           "replaces_share_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70"
                     *         },
                     *         "reissued": {
                     *           "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "subscription_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *           "units": 1,
                     *           "total_cost_basis": "1000.00",
                     *           "status": "status",
                     *           "replaces_share_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70"
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            cancellation: {
                                /** Format: uuid */
                                id: string;
                                reason: string;
                                /** Format: date-time */
                                created_at: string;
                            };
                            cancelled: {
                                /** Format: uuid */
                                id: string;
                                /** Format: uuid */
                                subscription_id: string;
                                /** Format: uuid */
                                user_id: string;
                                /** Format: uuid */
                                security_class_id: string;
                                units: number;
                                total_cost_basis: string;
                                status: string;
                                replaces_share_id: string | null;
                            };
                            reissued: {
                                /** Format: uuid */
                                id: string;
                                /** Format: uuid */
                                subscription_id: string;
                                /** Format: uuid */
                                user_id: string;
                                /** Format: uuid */
                                security_class_id: string;
                                units: number;
                                total_cost_basis: string;
                                status: string;
                                replaces_share_id: string | null;
                            } | null;
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminIssuersByIdOcf: {
        parameters: {
            query?: {
                formation_date?: string;
                country_of_formation?: string;
                country_subdivision_of_formation?: string;
            };
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description application/zip */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /** @example string */
                    "application/json": string;
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminMail: {
        parameters: {
            query?: {
                limit?: number;
                offset?: number;
                to?: string;
                status?: "kept" | "pending" | "sent" | "failed";
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "recipient": "recipient",
                     *             "subject": "subject",
                     *             "body": "body",
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "status": "kept",
                     *             "attempts": -9007199254740991,
                     *             "next_attempt_at": "2026-01-15T09:30:00.000Z",
                     *             "sent_at": "2026-01-15T09:30:00.000Z",
                     *             "last_error": "last_error"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "limit": 1,
                     *           "offset": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "has_next_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: {
                                /** Format: uuid */
                                id: string;
                                /** @description null (with subject and body) when the mail was sealed under a key this server does not have */
                                recipient: string | null;
                                subject: string | null;
                                /** @description the text; null once the mail was sent or failed (it held links and codes) */
                                body: string | null;
                                /** Format: date-time */
                                created_at: string;
                                /**
                                 * @description kept (no SMTP server), pending (to be sent), sent, or failed (refused, or retries used up)
                                 * @enum {string}
                                 */
                                status: "kept" | "pending" | "sent" | "failed";
                                /** @description SMTP attempts made */
                                attempts: number;
                                /** @description when a pending mail is tried next */
                                next_attempt_at: string | null;
                                sent_at: string | null;
                                /** @description why the last attempt failed: the SMTP command and reply code or the socket error, e.g. EENVELOPE RCPT TO 550, ESOCKET CONN ECONNREFUSED */
                                last_error: string | null;
                            }[];
                            meta: {
                                limit: number;
                                offset: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description whether items follow this page (page on with `offset` + `limit`), past the capped `total` too */
                                has_next_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminShares: {
        parameters: {
            query?: {
                page?: number;
                limit?: number;
                offering_id?: string;
                user_id?: string;
                status?: "active" | "transferred" | "converted" | "redeemed" | "cancelled";
                restricted?: "true" | "false";
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "security_class_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "units": 1,
                     *             "price_per_unit": "1000.00",
                     *             "total_cost_basis": "1000.00",
                     *             "currency": "USD",
                     *             "acquisition_type": "primary",
                     *             "acquisition_date": "acquisition_date",
                     *             "holding_period_end_date": "holding_period_end_date",
                     *             "restricted": true,
                     *             "restricted_until": "restricted_until",
                     *             "status": "active",
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "updated_at": "2026-01-15T09:30:00.000Z",
                     *             "security": {
                     *               "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *               "name": "Series A Preferred",
                     *               "category": "equity"
                     *             },
                     *             "offering": {
                     *               "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *               "name": "Series A Preferred"
                     *             },
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70"
                     *           }
                     *         ],
                     *         "meta": {
                     *           "page": 1,
                     *           "limit": 1,
                     *           "total": 1,
                     *           "total_capped": true,
                     *           "total_pages": 1,
                     *           "has_next_page": true,
                     *           "has_previous_page": true
                     *         }
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: {
                                /** Format: uuid */
                                id: string;
                                /** Format: uuid */
                                security_class_id: string;
                                units: number;
                                price_per_unit: string;
                                total_cost_basis: string;
                                currency: string;
                                /** @enum {string} */
                                acquisition_type: "primary";
                                acquisition_date: string;
                                holding_period_end_date: string | null;
                                restricted: boolean;
                                restricted_until: string | null;
                                /** @enum {string} */
                                status: "active" | "transferred" | "converted" | "redeemed" | "cancelled";
                                /** Format: date-time */
                                created_at: string;
                                /** Format: date-time */
                                updated_at: string;
                                security: {
                                    /** Format: uuid */
                                    id: string;
                                    name: string;
                                    category: components["schemas"]["SecurityCategory"];
                                };
                                offering: {
                                    /** Format: uuid */
                                    id: string;
                                    name: string;
                                };
                                /** Format: uuid */
                                org_id: string;
                                /** Format: uuid */
                                user_id: string;
                            }[];
                            meta: {
                                page: number;
                                limit: number;
                                /** @description matching items, counted up to 1 000 (see `total_capped`) */
                                total: number;
                                /** @description true when more than 1 000 items match: `total` is then 1 000 */
                                total_capped: boolean;
                                /** @description pages of `limit` in `total` (so at most 1 000 / `limit` when `total_capped`) */
                                total_pages: number;
                                /** @description whether items follow this page (true past `total_pages` too when `total_capped`) */
                                has_next_page: boolean;
                                has_previous_page: boolean;
                            };
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminConsoleSession: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "kind": "platform_admin",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "csrf_token": "csrf_token",
                     *         "expires_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** @enum {string} */
                            kind: "platform_admin" | "org_admin";
                            /** @description The org an org admin is confined to; null for platform staff */
                            org_id: string | null;
                            user_id: string | null;
                            /** @description Send it as X-CSRF-Token with every write made with the session cookie */
                            csrf_token: string;
                            /** Format: date-time */
                            expires_at: string;
                        };
                    };
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminConsoleSession: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "adminKey": "admin key"
                 *     }
                 */
                "application/json": {
                    adminKey: string;
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "kind": "platform_admin",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "user_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "csrf_token": "csrf_token",
                     *         "expires_at": "2026-01-15T09:30:00.000Z"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** @enum {string} */
                            kind: "platform_admin" | "org_admin";
                            /** @description The org an org admin is confined to; null for platform staff */
                            org_id: string | null;
                            user_id: string | null;
                            /** @description Send it as X-CSRF-Token with every write made with the session cookie */
                            csrf_token: string;
                            /** Format: date-time */
                            expires_at: string;
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    deleteAdminConsoleSession: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequest"];
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminOrgs: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "name": "Series A Preferred",
                     *             "idp_issuer": "idp_issuer",
                     *             "idp_audience": "idp_audience",
                     *             "created_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ]
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: {
                                /** Format: uuid */
                                id: string;
                                name: string;
                                idp_issuer: string | null;
                                idp_audience: string;
                                /** Format: date-time */
                                created_at: string;
                            }[];
                        };
                    };
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getAdminOrgsByIdApiKeys: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "items": [
                     *           {
                     *             "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *             "hint": "hint",
                     *             "label": "label",
                     *             "created_at": "2026-01-15T09:30:00.000Z",
                     *             "revoked_at": "2026-01-15T09:30:00.000Z"
                     *           }
                     *         ]
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            items: {
                                /** Format: uuid */
                                id: string;
                                /** Format: uuid */
                                org_id: string;
                                hint: string;
                                label: string | null;
                                /** Format: date-time */
                                created_at: string;
                                revoked_at: string | null;
                            }[];
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminOrgsByIdApiKeys: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                /**
                 * @example {
                 *       "label": "label"
                 *     }
                 */
                "application/json": {
                    label?: string;
                } | null;
            };
        };
        responses: {
            /** @description Default Response */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "success": true,
                     *       "data": {
                     *         "id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "org_id": "3f0f2b8e-5d7a-4c1e-9a6b-2f4d8c9e1a70",
                     *         "key": "key",
                     *         "hint": "hint"
                     *       }
                     *     }
                     */
                    "application/json": {
                        /** @enum {boolean} */
                        success: true;
                        data: {
                            /** Format: uuid */
                            id: string;
                            /** Format: uuid */
                            org_id: string;
                            key: string;
                            hint: string;
                        };
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postAdminOrgsByIdApiKeysByKeyIdRevoke: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the write safe to retry: the same key and body within 24 h replays the first response (header `idempotent-replayed: true`); the same key with another body gets 422.
                 * @example 5b8a1c2e-7f43-4c6a-b9d2-0e1f7a3c5d94
                 */
                "Idempotency-Key"?: string;
            };
            path: {
                id: string;
                keyId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            /** @description Default Response */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Error"];
                };
            };
            422: components["responses"]["UnprocessableEntity"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getRoot: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "key_server",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getV3KeyValuesByKey: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                key: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "key_value",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getV3AccountsByAddressSigners: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                address: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "signer",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getAccountsByAddressSigners: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                address: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "signer",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postAccountsByAddressSigners: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                address: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "signer",
                 *         "id": "id",
                 *         "attributes": {
                 *           "role_id": 0,
                 *           "weight": 1000,
                 *           "identity": 0,
                 *           "details": "details"
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        /** @enum {string} */
                        type: "signer" | "identity-signer";
                        id: string;
                        attributes: {
                            role_id: number;
                            /** @default 1000 */
                            weight?: number;
                            /** @default 0 */
                            identity?: number;
                            details?: string | {
                                [key: string]: unknown;
                            };
                        };
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "signer",
                 *         "id": "id",
                 *         "attributes": {
                 *           "role_id": 0,
                 *           "weight": 1000,
                 *           "identity": 0,
                 *           "details": "details"
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        /** @enum {string} */
                        type: "signer" | "identity-signer";
                        id: string;
                        attributes: {
                            role_id: number;
                            /** @default 1000 */
                            weight?: number;
                            /** @default 0 */
                            identity?: number;
                            details?: string | {
                                [key: string]: unknown;
                            };
                        };
                    };
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "signer",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postAccounts: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "id": "id",
                 *         "relationships": {
                 *           "signers": {
                 *             "data": [
                 *               {
                 *                 "id": "id"
                 *               }
                 *             ]
                 *           }
                 *         }
                 *       },
                 *       "included": [
                 *         {
                 *           "type": "signer",
                 *           "id": "id",
                 *           "attributes": {
                 *             "role_id": 0,
                 *             "weight": 1000,
                 *             "identity": 0,
                 *             "details": "details"
                 *           }
                 *         }
                 *       ]
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type?: string;
                        id: string;
                        relationships: {
                            signers: {
                                data: {
                                    id: string;
                                }[];
                            };
                        };
                    };
                    included: {
                        /** @enum {string} */
                        type: "signer";
                        id: string;
                        attributes: {
                            role_id: number;
                            /** @default 1000 */
                            weight?: number;
                            /** @default 0 */
                            identity?: number;
                            details?: string | {
                                [key: string]: unknown;
                            };
                        };
                    }[];
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "id": "id",
                 *         "relationships": {
                 *           "signers": {
                 *             "data": [
                 *               {
                 *                 "id": "id"
                 *               }
                 *             ]
                 *           }
                 *         }
                 *       },
                 *       "included": [
                 *         {
                 *           "type": "signer",
                 *           "id": "id",
                 *           "attributes": {
                 *             "role_id": 0,
                 *             "weight": 1000,
                 *             "identity": 0,
                 *             "details": "details"
                 *           }
                 *         }
                 *       ]
                 *     }
                 */
                "application/json": {
                    data: {
                        type?: string;
                        id: string;
                        relationships: {
                            signers: {
                                data: {
                                    id: string;
                                }[];
                            };
                        };
                    };
                    included: {
                        /** @enum {string} */
                        type: "signer";
                        id: string;
                        attributes: {
                            role_id: number;
                            /** @default 1000 */
                            weight?: number;
                            /** @default 0 */
                            identity?: number;
                            details?: string | {
                                [key: string]: unknown;
                            };
                        };
                    }[];
                };
            };
        };
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getKdf: {
        parameters: {
            query?: {
                email?: string;
                is_recovery?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "kdf",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getWalletsKdf: {
        parameters: {
            query?: {
                email?: string;
                is_recovery?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "kdf",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getWallets: {
        parameters: {
            query?: {
                "page[number]"?: number;
                "page[limit]"?: number;
                state?: number;
                "filter[state]"?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "wallet",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postWallets: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "wallet",
                 *         "id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 *         "attributes": {
                 *           "email": "investor@example.com",
                 *           "account_id": "account_id",
                 *           "salt": "salt",
                 *           "keychain_data": "keychain_data",
                 *           "verification_code": "verification_code",
                 *           "invite_code": "invite_code"
                 *         },
                 *         "relationships": {
                 *           "kdf": {
                 *             "data": {
                 *               "type": "type",
                 *               "id": "id"
                 *             }
                 *           },
                 *           "factor": {
                 *             "data": {
                 *               "type": "password",
                 *               "id": "id"
                 *             }
                 *           },
                 *           "signers": {
                 *             "data": [
                 *               {
                 *                 "type": "type",
                 *                 "id": "id"
                 *               }
                 *             ]
                 *           }
                 *         }
                 *       },
                 *       "included": [
                 *         {
                 *           "type": "type",
                 *           "id": "id"
                 *         }
                 *       ]
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        /** @enum {string} */
                        type: "wallet";
                        id: string;
                        attributes: {
                            /** Format: email */
                            email: string;
                            account_id: string;
                            salt: string;
                            keychain_data: string;
                            verification_code?: string;
                            invite_code?: string;
                        };
                        relationships: {
                            kdf: {
                                data: {
                                    type: string;
                                    id: string;
                                };
                            };
                            factor: {
                                data: {
                                    /** @enum {string} */
                                    type: "password";
                                    id: string;
                                };
                            };
                            signers?: {
                                data: {
                                    type: string;
                                    id: string;
                                }[];
                            };
                        };
                    };
                    included: (({
                        type: string;
                        id?: string;
                    } & {
                        [key: string]: unknown;
                    }) | null)[];
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "wallet",
                 *         "id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 *         "attributes": {
                 *           "email": "investor@example.com",
                 *           "account_id": "account_id",
                 *           "salt": "salt",
                 *           "keychain_data": "keychain_data",
                 *           "verification_code": "verification_code",
                 *           "invite_code": "invite_code"
                 *         },
                 *         "relationships": {
                 *           "kdf": {
                 *             "data": {
                 *               "type": "type",
                 *               "id": "id"
                 *             }
                 *           },
                 *           "factor": {
                 *             "data": {
                 *               "type": "password",
                 *               "id": "id"
                 *             }
                 *           },
                 *           "signers": {
                 *             "data": [
                 *               {
                 *                 "type": "type",
                 *                 "id": "id"
                 *               }
                 *             ]
                 *           }
                 *         }
                 *       },
                 *       "included": [
                 *         {
                 *           "type": "type",
                 *           "id": "id"
                 *         }
                 *       ]
                 *     }
                 */
                "application/json": {
                    data: {
                        /** @enum {string} */
                        type: "wallet";
                        id: string;
                        attributes: {
                            /** Format: email */
                            email: string;
                            account_id: string;
                            salt: string;
                            keychain_data: string;
                            verification_code?: string;
                            invite_code?: string;
                        };
                        relationships: {
                            kdf: {
                                data: {
                                    type: string;
                                    id: string;
                                };
                            };
                            factor: {
                                data: {
                                    /** @enum {string} */
                                    type: "password";
                                    id: string;
                                };
                            };
                            signers?: {
                                data: {
                                    type: string;
                                    id: string;
                                }[];
                            };
                        };
                    };
                    included: (({
                        type: string;
                        id?: string;
                    } & {
                        [key: string]: unknown;
                    }) | null)[];
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "wallet",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getWalletsByWalletId: {
        parameters: {
            query?: {
                location_lat?: string;
                location_long?: string;
                public_ip?: string;
            };
            header?: never;
            path: {
                walletId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "wallet",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    putWalletsByWalletId: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                walletId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "wallet",
                 *         "id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 *         "attributes": {
                 *           "email": "investor@example.com",
                 *           "account_id": "account_id",
                 *           "salt": "salt",
                 *           "keychain_data": "keychain_data"
                 *         },
                 *         "relationships": {
                 *           "kdf": {
                 *             "data": {
                 *               "type": "type",
                 *               "id": "id"
                 *             }
                 *           },
                 *           "factor": {
                 *             "data": {
                 *               "type": "password",
                 *               "id": "id"
                 *             }
                 *           },
                 *           "transaction": {
                 *             "data": {
                 *               "type": "transaction",
                 *               "id": "id"
                 *             }
                 *           }
                 *         }
                 *       },
                 *       "included": [
                 *         {
                 *           "type": "type",
                 *           "id": "id"
                 *         }
                 *       ]
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        /** @enum {string} */
                        type: "wallet";
                        id: string;
                        attributes: {
                            /** Format: email */
                            email: string;
                            account_id: string;
                            salt: string;
                            keychain_data: string;
                        };
                        relationships: {
                            kdf: {
                                data: {
                                    type: string;
                                    id: string;
                                };
                            };
                            factor: {
                                data: {
                                    /** @enum {string} */
                                    type: "password";
                                    id: string;
                                };
                            };
                            transaction: {
                                data: {
                                    /** @enum {string} */
                                    type: "transaction";
                                    id: string;
                                };
                            };
                        };
                    } | {
                        /** @enum {string} */
                        type: "recovery-wallet";
                        id: string;
                        attributes: {
                            /** Format: email */
                            email: string;
                            salt: string;
                            keychain_data: string;
                            account_id?: string;
                        };
                        relationships: {
                            kdf: {
                                data: {
                                    type: string;
                                    id: string;
                                };
                            };
                            factor: {
                                data: {
                                    /** @enum {string} */
                                    type: "password";
                                    id: string;
                                };
                            };
                            signer: {
                                data: {
                                    /** @enum {string} */
                                    type: "signer";
                                    id: string;
                                };
                            };
                        };
                    };
                    included: (({
                        type: string;
                        id?: string;
                    } & {
                        [key: string]: unknown;
                    }) | null)[];
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "wallet",
                 *         "id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 *         "attributes": {
                 *           "email": "investor@example.com",
                 *           "account_id": "account_id",
                 *           "salt": "salt",
                 *           "keychain_data": "keychain_data"
                 *         },
                 *         "relationships": {
                 *           "kdf": {
                 *             "data": {
                 *               "type": "type",
                 *               "id": "id"
                 *             }
                 *           },
                 *           "factor": {
                 *             "data": {
                 *               "type": "password",
                 *               "id": "id"
                 *             }
                 *           },
                 *           "transaction": {
                 *             "data": {
                 *               "type": "transaction",
                 *               "id": "id"
                 *             }
                 *           }
                 *         }
                 *       },
                 *       "included": [
                 *         {
                 *           "type": "type",
                 *           "id": "id"
                 *         }
                 *       ]
                 *     }
                 */
                "application/json": {
                    data: {
                        /** @enum {string} */
                        type: "wallet";
                        id: string;
                        attributes: {
                            /** Format: email */
                            email: string;
                            account_id: string;
                            salt: string;
                            keychain_data: string;
                        };
                        relationships: {
                            kdf: {
                                data: {
                                    type: string;
                                    id: string;
                                };
                            };
                            factor: {
                                data: {
                                    /** @enum {string} */
                                    type: "password";
                                    id: string;
                                };
                            };
                            transaction: {
                                data: {
                                    /** @enum {string} */
                                    type: "transaction";
                                    id: string;
                                };
                            };
                        };
                    } | {
                        /** @enum {string} */
                        type: "recovery-wallet";
                        id: string;
                        attributes: {
                            /** Format: email */
                            email: string;
                            salt: string;
                            keychain_data: string;
                            account_id?: string;
                        };
                        relationships: {
                            kdf: {
                                data: {
                                    type: string;
                                    id: string;
                                };
                            };
                            factor: {
                                data: {
                                    /** @enum {string} */
                                    type: "password";
                                    id: string;
                                };
                            };
                            signer: {
                                data: {
                                    /** @enum {string} */
                                    type: "signer";
                                    id: string;
                                };
                            };
                        };
                    };
                    included: (({
                        type: string;
                        id?: string;
                    } & {
                        [key: string]: unknown;
                    }) | null)[];
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "wallet",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    deleteWalletsByWalletId: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                walletId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    putWalletsByWalletIdVerification: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                walletId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "token": "eyJhbGciOiJSUzI1NiIsImtpZCI6ImRlbW8ifQ.eyJzdWIiOiJ1c2VyLTEifQ.c2"
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type?: string;
                        attributes: {
                            token: string;
                        };
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "token": "eyJhbGciOiJSUzI1NiIsImtpZCI6ImRlbW8ifQ.eyJzdWIiOiJ1c2VyLTEifQ.c2"
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        type?: string;
                        attributes: {
                            token: string;
                        };
                    };
                };
            };
        };
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postWalletsByWalletIdVerification: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                walletId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getSessionsBySessionId: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                sessionId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "session",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getWalletsByWalletIdFactors: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                walletId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "factor",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postWalletsByWalletIdFactors: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                walletId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type"
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type: string;
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type"
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        type: string;
                    };
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "factor",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    deleteWalletsByWalletIdFactorsByFactorId: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                walletId: string;
                factorId: number;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    patchWalletsByWalletIdFactorsByFactorId: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                walletId: string;
                factorId: number;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "priority": 0
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type?: string;
                        attributes: {
                            priority: number;
                        };
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "priority": 0
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        type?: string;
                        attributes: {
                            priority: number;
                        };
                    };
                };
            };
        };
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    putWalletsByWalletIdFactorsByFactorIdVerification: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                walletId: string;
                factorId: number;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "token": "eyJhbGciOiJSUzI1NiIsImtpZCI6ImRlbW8ifQ.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl",
                 *           "otp": "otp"
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type?: string;
                        attributes: {
                            token: string;
                            otp: string;
                        };
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "token": "eyJhbGciOiJSUzI1NiIsImtpZCI6ImRlbW8ifQ.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl",
                 *           "otp": "otp"
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        type?: string;
                        attributes: {
                            token: string;
                            otp: string;
                        };
                    };
                };
            };
        };
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postBlobs: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "value": "value"
                 *         },
                 *         "relationships": {
                 *           "owner": {
                 *             "data": {
                 *               "id": "id"
                 *             }
                 *           }
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type: string;
                        attributes: {
                            value: string;
                        };
                        relationships?: {
                            owner: {
                                data: {
                                    id: string;
                                };
                            };
                        };
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "value": "value"
                 *         },
                 *         "relationships": {
                 *           "owner": {
                 *             "data": {
                 *               "id": "id"
                 *             }
                 *           }
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        type: string;
                        attributes: {
                            value: string;
                        };
                        relationships?: {
                            owner: {
                                data: {
                                    id: string;
                                };
                            };
                        };
                    };
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "blob",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getAccountsByAddressBlobs: {
        parameters: {
            query?: {
                "filter[type]"?: number;
                type?: number;
                "filter[deleted]"?: "true" | "false";
            };
            header?: never;
            path: {
                address: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "blob",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postAccountsByAddressBlobs: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                address: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "value": "value"
                 *         },
                 *         "relationships": {
                 *           "owner": {
                 *             "data": {
                 *               "id": "id"
                 *             }
                 *           }
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type: string;
                        attributes: {
                            value: string;
                        };
                        relationships?: {
                            owner: {
                                data: {
                                    id: string;
                                };
                            };
                        };
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "value": "value"
                 *         },
                 *         "relationships": {
                 *           "owner": {
                 *             "data": {
                 *               "id": "id"
                 *             }
                 *           }
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        type: string;
                        attributes: {
                            value: string;
                        };
                        relationships?: {
                            owner: {
                                data: {
                                    id: string;
                                };
                            };
                        };
                    };
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "blob",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getBlobsByBlobId: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                blobId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "blob",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    deleteBlobsByBlobId: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                blobId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getAccountsByAddressBlobsByBlobId: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                address: string;
                blobId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "blob",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postDocuments: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "content_type": "content_type"
                 *         },
                 *         "relationships": {
                 *           "owner": {
                 *             "data": {
                 *               "id": "id"
                 *             }
                 *           }
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type: string;
                        attributes: {
                            content_type: string;
                        };
                        relationships?: {
                            owner: {
                                data: {
                                    id: string;
                                };
                            };
                        };
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "content_type": "content_type"
                 *         },
                 *         "relationships": {
                 *           "owner": {
                 *             "data": {
                 *               "id": "id"
                 *             }
                 *           }
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        type: string;
                        attributes: {
                            content_type: string;
                        };
                        relationships?: {
                            owner: {
                                data: {
                                    id: string;
                                };
                            };
                        };
                    };
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "document",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postAccountsByAddressDocuments: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                address: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "content_type": "content_type"
                 *         },
                 *         "relationships": {
                 *           "owner": {
                 *             "data": {
                 *               "id": "id"
                 *             }
                 *           }
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type: string;
                        attributes: {
                            content_type: string;
                        };
                        relationships?: {
                            owner: {
                                data: {
                                    id: string;
                                };
                            };
                        };
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "content_type": "content_type"
                 *         },
                 *         "relationships": {
                 *           "owner": {
                 *             "data": {
                 *               "id": "id"
                 *             }
                 *           }
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        type: string;
                        attributes: {
                            content_type: string;
                        };
                        relationships?: {
                            owner: {
                                data: {
                                    id: string;
                                };
                            };
                        };
                    };
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "document",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getDocumentsByKey: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                key: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "document",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getAccountsByAddressDocumentsByKey: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                address: string;
                key: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "document",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getIdentities: {
        parameters: {
            query?: {
                "page[number]"?: number;
                "page[limit]"?: number;
                "filter[email]"?: string;
                "filter[address]"?: string;
                "filter[phone]"?: string;
                "filter[identifier]"?: string;
                "filter[telegram_username]"?: string;
                "filter[passport]"?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "identity",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postIdentities: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "email": "investor@example.com",
                 *           "phone_number": "+14155550123"
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type?: string;
                        attributes: {
                            /** Format: email */
                            email?: string;
                            phone_number?: string;
                        };
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "email": "investor@example.com",
                 *           "phone_number": "+14155550123"
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        type?: string;
                        attributes: {
                            /** Format: email */
                            email?: string;
                            phone_number?: string;
                        };
                    };
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "identity",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postIdentitiesMassCreate: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": [
                 *         {
                 *           "type": "type",
                 *           "attributes": {
                 *             "email": "investor@example.com",
                 *             "phone_number": "+14155550123"
                 *           }
                 *         }
                 *       ]
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type?: string;
                        attributes: {
                            /** Format: email */
                            email?: string;
                            phone_number?: string;
                        };
                    }[];
                };
                /**
                 * @example {
                 *       "data": [
                 *         {
                 *           "type": "type",
                 *           "attributes": {
                 *             "email": "investor@example.com",
                 *             "phone_number": "+14155550123"
                 *           }
                 *         }
                 *       ]
                 *     }
                 */
                "application/json": {
                    data: {
                        type?: string;
                        attributes: {
                            /** Format: email */
                            email?: string;
                            phone_number?: string;
                        };
                    }[];
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "mass-create",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postIdentitiesMassEmails: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": [
                 *         {
                 *           "type": "type",
                 *           "id": "id"
                 *         }
                 *       ]
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type?: string;
                        id: string;
                    }[];
                };
                /**
                 * @example {
                 *       "data": [
                 *         {
                 *           "type": "type",
                 *           "id": "id"
                 *         }
                 *       ]
                 *     }
                 */
                "application/json": {
                    data: {
                        type?: string;
                        id: string;
                    }[];
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "mass-email",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    deleteIdentitiesByIdentifier: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                identifier: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    putIdentitiesByAddressSettingsPhone: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                address: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "phone": "+14155550123"
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type?: string;
                        attributes: {
                            phone: string;
                        };
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "phone": "+14155550123"
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        type?: string;
                        attributes: {
                            phone: string;
                        };
                    };
                };
            };
        };
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    putIdentitiesByAddressSettingsTelegram: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                address: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "username": "username"
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type?: string;
                        attributes: {
                            username: string;
                        };
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "username": "username"
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        type?: string;
                        attributes: {
                            username: string;
                        };
                    };
                };
            };
        };
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getIdentitiesByAddressSettings: {
        parameters: {
            query?: {
                "page[number]"?: number;
                "page[limit]"?: number;
            };
            header?: never;
            path: {
                address: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "setting",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    putIdentitiesByAddressSettings: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                address: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "key": "key",
                 *           "value": "value"
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type?: string;
                        attributes: {
                            key: string;
                            value: components["schemas"]["JsonValueInput"];
                        };
                    };
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "type",
                 *         "attributes": {
                 *           "key": "key",
                 *           "value": "value"
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        type?: string;
                        attributes: {
                            key: string;
                            value: components["schemas"]["JsonValueInput"];
                        };
                    };
                };
            };
        };
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getIdentitiesByAddressSettingsByKey: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                address: string;
                key: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "setting",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            404: components["responses"]["NotFoundJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getInvites: {
        parameters: {
            query?: {
                "filter[sale-id]"?: string;
                "page[number]"?: number;
                "page[limit]"?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "invite",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    postInvites: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": {
                 *         "type": "whitelist-invite",
                 *         "attributes": {
                 *           "email": "investor@example.com"
                 *         },
                 *         "relationships": {
                 *           "sales": {
                 *             "data": {
                 *               "id": "id"
                 *             }
                 *           }
                 *         }
                 *       }
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        /** @enum {string} */
                        type: "whitelist-invite" | "general-invite";
                        attributes: {
                            /** Format: email */
                            email: string;
                        };
                        relationships?: {
                            sales: {
                                data: {
                                    id: string;
                                };
                            };
                        };
                    } | {
                        /** @enum {string} */
                        type: "whitelist-invite" | "general-invite";
                        attributes: {
                            /** Format: email */
                            email: string;
                        };
                        relationships?: {
                            sales: {
                                data: {
                                    id: string;
                                };
                            };
                        };
                    }[];
                };
                /**
                 * @example {
                 *       "data": {
                 *         "type": "whitelist-invite",
                 *         "attributes": {
                 *           "email": "investor@example.com"
                 *         },
                 *         "relationships": {
                 *           "sales": {
                 *             "data": {
                 *               "id": "id"
                 *             }
                 *           }
                 *         }
                 *       }
                 *     }
                 */
                "application/json": {
                    data: {
                        /** @enum {string} */
                        type: "whitelist-invite" | "general-invite";
                        attributes: {
                            /** Format: email */
                            email: string;
                        };
                        relationships?: {
                            sales: {
                                data: {
                                    id: string;
                                };
                            };
                        };
                    } | {
                        /** @enum {string} */
                        type: "whitelist-invite" | "general-invite";
                        attributes: {
                            /** Format: email */
                            email: string;
                        };
                        relationships?: {
                            sales: {
                                data: {
                                    id: string;
                                };
                            };
                        };
                    }[];
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "data": {
                     *         "type": "invite",
                     *         "id": "1",
                     *         "attributes": {}
                     *       }
                     *     }
                     */
                    "application/vnd.api+json": components["schemas"]["JsonApiDocument"];
                };
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    deleteInvites: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "data": [
                 *         {
                 *           "type": "type",
                 *           "id": 1
                 *         }
                 *       ]
                 *     }
                 */
                "application/vnd.api+json": {
                    data: {
                        type?: string;
                        id: number;
                    }[];
                };
                /**
                 * @example {
                 *       "data": [
                 *         {
                 *           "type": "type",
                 *           "id": 1
                 *         }
                 *       ]
                 *     }
                 */
                "application/json": {
                    data: {
                        type?: string;
                        id: number;
                    }[];
                };
            };
        };
        responses: {
            /** @description No content */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequestJsonApi"];
            401: components["responses"]["UnauthorizedJsonApi"];
            403: components["responses"]["ForbiddenJsonApi"];
            429: components["responses"]["TooManyRequestsJsonApi"];
            503: components["responses"]["ServiceUnavailableJsonApi"];
        };
    };
    getDemoIdpWellKnownOpenidConfiguration: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getDemoIdpAuthorize: {
        parameters: {
            query: {
                response_type: "code";
                client_id: string;
                redirect_uri: string;
                state: string;
                nonce?: string;
                code_challenge: string;
                code_challenge_method: "S256";
                scope?: string;
                login_hint?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequest"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postDemoIdpAuthorize: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "response_type": "code",
                 *       "client_id": "client_id",
                 *       "redirect_uri": "https://app.example.com/return",
                 *       "state": "CA",
                 *       "nonce": "nonce",
                 *       "code_challenge": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 *       "code_challenge_method": "S256",
                 *       "scope": "scope",
                 *       "login_hint": "investor@example.com",
                 *       "email": "investor@example.com"
                 *     }
                 */
                "application/json": {
                    /** @enum {string} */
                    response_type: "code";
                    client_id: string;
                    /** Format: uri */
                    redirect_uri: string;
                    state: string;
                    nonce?: string;
                    code_challenge: string;
                    /** @enum {string} */
                    code_challenge_method: "S256";
                    scope?: string;
                    /** Format: email */
                    login_hint?: string;
                    /** Format: email */
                    email: string;
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            400: components["responses"]["BadRequest"];
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    getDemoIdpJwksJson: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
    postDemoIdpToken: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "email": "investor@example.com"
                 *     }
                 */
                "application/json": {
                    /** Format: email */
                    email: string;
                } | {
                    /** @enum {string} */
                    grant_type: "authorization_code";
                    code: string;
                    redirect_uri: string;
                    client_id: string;
                    code_verifier: string;
                };
            };
        };
        responses: {
            /** @description Default Response */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "id_token": "id_token",
                     *       "token_type": "Bearer",
                     *       "expires_in": 1
                     *     }
                     */
                    "application/json": {
                        id_token: string;
                        /** @enum {string} */
                        token_type: "Bearer";
                        expires_in: number;
                    };
                };
            };
            /** @description Default Response */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": {
                        error: string;
                        error_description: string;
                    };
                };
            };
            503: components["responses"]["ServiceUnavailable"];
        };
    };
}
