-- The ID token's `sub` is no longer kept in clear: many IdPs put an email or a username in it
-- (`auth0|alice@example.com`). Users are found by its keyed hash; the sealed email is bound to the
-- hash instead. SQL cannot hash with the platform's key, so this adds the column and lets the
-- plaintext one be null; `sealPlaintextRows` (src/app.ts), run at every start after the
-- migrations, fills the hash, seals the email again under it and nulls the plaintext subject.
DROP INDEX "users_org_subject_idx";--> statement-breakpoint
ALTER TABLE "users" ALTER COLUMN "external_subject" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "subject_digest" text;--> statement-breakpoint
CREATE UNIQUE INDEX "users_org_subject_digest_idx" ON "users" USING btree ("org_id","subject_digest");
