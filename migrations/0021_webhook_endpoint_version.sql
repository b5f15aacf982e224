-- A counter bumped by every change of a webhook endpoint or of its signing secrets (update,
-- disable, rotate-secret). The dispatcher caches each endpoint's config and unsealed secrets keyed
-- on it, so a change made by any process is seen at the worker's next claim, without pub/sub and
-- without relying on updated_at, which two changes in the same millisecond would share.
ALTER TABLE "webhook_endpoints" ADD COLUMN "version" integer DEFAULT 1 NOT NULL;
