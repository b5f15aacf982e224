-- PII sealed at rest. SQL cannot seal (the keys are not in the database), so this only
-- adds the sealed and keyed-hash columns, moves uniqueness onto the keyed hashes and lets the old
-- plaintext columns be null. Rows already there are sealed by `sealPlaintextRows`
-- (src/keyserver/at-rest.ts), which every start runs after the migrations: it fills the new
-- columns, nulls the plaintext ones and re-keys ks_sessions by the keyed hash of the session id.
DROP INDEX "mail_outbox_recipient_idx";--> statement-breakpoint
DROP INDEX "ks_identities_email_idx";--> statement-breakpoint
DROP INDEX "ks_identities_phone_idx";--> statement-breakpoint
DROP INDEX "ks_identities_telegram_idx";--> statement-breakpoint
DROP INDEX "ks_invites_email_sale_idx";--> statement-breakpoint
DROP INDEX "ks_wallets_wallet_id_idx";--> statement-breakpoint
DROP INDEX "ks_wallets_email_idx";--> statement-breakpoint
ALTER TABLE "mail_outbox" ALTER COLUMN "recipient" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "mail_outbox" ALTER COLUMN "subject" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "mail_outbox" ALTER COLUMN "body" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "ks_blobs" ALTER COLUMN "value" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "ks_identity_settings" ALTER COLUMN "value" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "ks_invites" ALTER COLUMN "email" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "ks_wallets" ALTER COLUMN "wallet_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "ks_wallets" ALTER COLUMN "email" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "mail_outbox" ADD COLUMN "recipient_digest" text;--> statement-breakpoint
ALTER TABLE "mail_outbox" ADD COLUMN "key_id" text;--> statement-breakpoint
ALTER TABLE "mail_outbox" ADD COLUMN "wrapped_key" text;--> statement-breakpoint
ALTER TABLE "mail_outbox" ADD COLUMN "ciphertext" text;--> statement-breakpoint
ALTER TABLE "ks_blobs" ADD COLUMN "key_id" text;--> statement-breakpoint
ALTER TABLE "ks_blobs" ADD COLUMN "wrapped_key" text;--> statement-breakpoint
ALTER TABLE "ks_blobs" ADD COLUMN "ciphertext" text;--> statement-breakpoint
ALTER TABLE "ks_identities" ADD COLUMN "email_digest" text;--> statement-breakpoint
ALTER TABLE "ks_identities" ADD COLUMN "phone_digest" text;--> statement-breakpoint
ALTER TABLE "ks_identities" ADD COLUMN "telegram_digest" text;--> statement-breakpoint
ALTER TABLE "ks_identities" ADD COLUMN "passport_digest" text;--> statement-breakpoint
ALTER TABLE "ks_identities" ADD COLUMN "key_id" text;--> statement-breakpoint
ALTER TABLE "ks_identities" ADD COLUMN "wrapped_key" text;--> statement-breakpoint
ALTER TABLE "ks_identities" ADD COLUMN "ciphertext" text;--> statement-breakpoint
ALTER TABLE "ks_identity_settings" ADD COLUMN "key_id" text;--> statement-breakpoint
ALTER TABLE "ks_identity_settings" ADD COLUMN "wrapped_key" text;--> statement-breakpoint
ALTER TABLE "ks_identity_settings" ADD COLUMN "ciphertext" text;--> statement-breakpoint
ALTER TABLE "ks_invites" ADD COLUMN "email_digest" text;--> statement-breakpoint
ALTER TABLE "ks_invites" ADD COLUMN "key_id" text;--> statement-breakpoint
ALTER TABLE "ks_invites" ADD COLUMN "wrapped_key" text;--> statement-breakpoint
ALTER TABLE "ks_invites" ADD COLUMN "ciphertext" text;--> statement-breakpoint
ALTER TABLE "ks_wallets" ADD COLUMN "wallet_id_digest" text;--> statement-breakpoint
ALTER TABLE "ks_wallets" ADD COLUMN "email_digest" text;--> statement-breakpoint
ALTER TABLE "ks_wallets" ADD COLUMN "key_id" text;--> statement-breakpoint
ALTER TABLE "ks_wallets" ADD COLUMN "wrapped_key" text;--> statement-breakpoint
ALTER TABLE "ks_wallets" ADD COLUMN "ciphertext" text;--> statement-breakpoint
CREATE INDEX "mail_outbox_recipient_digest_idx" ON "mail_outbox" USING btree ("recipient_digest","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_identities_email_digest_idx" ON "ks_identities" USING btree ("email_digest");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_identities_phone_digest_idx" ON "ks_identities" USING btree ("phone_digest");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_identities_telegram_digest_idx" ON "ks_identities" USING btree ("telegram_digest");--> statement-breakpoint
CREATE INDEX "ks_identities_passport_digest_idx" ON "ks_identities" USING btree ("passport_digest");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_invites_email_digest_sale_idx" ON "ks_invites" USING btree ("email_digest","type","sale_id");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_wallets_wallet_id_digest_idx" ON "ks_wallets" USING btree ("wallet_id_digest");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_wallets_email_digest_idx" ON "ks_wallets" USING btree ("email_digest");