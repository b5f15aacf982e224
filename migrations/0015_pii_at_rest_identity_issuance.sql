-- The last PII in clear sealed at rest: users' emails, orgs' admin emails, the signer evidence of
-- subscriptions. As in 0014, SQL cannot seal (the keys are not in the database): this adds the
-- sealed and keyed-hash columns and lets the plaintext ones be null. `sealPlaintextRows` (src/app.ts),
-- run at every start after the migrations, seals rows already there and nulls their plaintext.
DROP INDEX "users_org_email_idx";--> statement-breakpoint
ALTER TABLE "orgs" ALTER COLUMN "admin_emails" DROP DEFAULT;--> statement-breakpoint
ALTER TABLE "orgs" ALTER COLUMN "admin_emails" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "users" ALTER COLUMN "email" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "orgs" ADD COLUMN "admin_email_digests" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "email_digest" text;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "email_key_id" text;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "email_wrapped_key" text;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "email_ciphertext" text;--> statement-breakpoint
ALTER TABLE "subscriptions" ADD COLUMN "signer_key_id" text;--> statement-breakpoint
ALTER TABLE "subscriptions" ADD COLUMN "signer_wrapped_key" text;--> statement-breakpoint
ALTER TABLE "subscriptions" ADD COLUMN "signer_ciphertext" text;--> statement-breakpoint
CREATE INDEX "users_org_email_digest_idx" ON "users" USING btree ("org_id","email_digest");