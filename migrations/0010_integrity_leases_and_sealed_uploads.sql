ALTER TABLE "idempotency_keys" ADD COLUMN "owner" uuid;--> statement-breakpoint
ALTER TABLE "idempotency_keys" ADD COLUMN "lease_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "accreditation_documents" ADD COLUMN "upload_expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "accreditation_documents" ADD COLUMN "sha256" text;--> statement-breakpoint
ALTER TABLE "kyc_verifications" ADD COLUMN "submit_lease_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "ks_documents" ADD COLUMN "sealed_key" text;--> statement-breakpoint
ALTER TABLE "ks_documents" ADD COLUMN "sha256" text;--> statement-breakpoint
ALTER TABLE "ks_documents" ADD COLUMN "size_bytes" integer;