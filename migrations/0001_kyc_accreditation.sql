CREATE TABLE "accreditation_documents" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"accreditation_id" uuid NOT NULL,
	"document_type" text NOT NULL,
	"file_name" text NOT NULL,
	"content_type" text NOT NULL,
	"file_size_bytes" integer NOT NULL,
	"storage_key" text NOT NULL,
	"status" text NOT NULL,
	"failure_reason" text,
	"uploaded_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "accreditations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"org_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"status" text NOT NULL,
	"basis" text,
	"review_status" text NOT NULL,
	"reviewed_by" text,
	"review_reason" text,
	"submitted_at" timestamp with time zone,
	"reviewed_at" timestamp with time zone,
	"expires_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "admin_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"digest" text NOT NULL,
	"label" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "kyc_verifications" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"org_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"status" text NOT NULL,
	"identity_check" text NOT NULL,
	"document_check" text NOT NULL,
	"required_action" jsonb,
	"provider" text NOT NULL,
	"provider_reference" text,
	"reviewed_by" text,
	"review_reason" text,
	"submitted_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "accreditation_documents" ADD CONSTRAINT "accreditation_documents_accreditation_id_accreditations_id_fk" FOREIGN KEY ("accreditation_id") REFERENCES "public"."accreditations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "accreditations" ADD CONSTRAINT "accreditations_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "kyc_verifications" ADD CONSTRAINT "kyc_verifications_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "accreditation_documents_accreditation_idx" ON "accreditation_documents" USING btree ("accreditation_id");--> statement-breakpoint
CREATE UNIQUE INDEX "accreditations_user_idx" ON "accreditations" USING btree ("org_id","user_id");--> statement-breakpoint
CREATE INDEX "accreditations_review_idx" ON "accreditations" USING btree ("org_id","review_status");--> statement-breakpoint
CREATE UNIQUE INDEX "admin_keys_digest_idx" ON "admin_keys" USING btree ("digest");--> statement-breakpoint
CREATE INDEX "kyc_verifications_user_idx" ON "kyc_verifications" USING btree ("user_id","created_at");--> statement-breakpoint
CREATE INDEX "kyc_verifications_org_status_idx" ON "kyc_verifications" USING btree ("org_id","status");--> statement-breakpoint
CREATE UNIQUE INDEX "kyc_verifications_provider_ref_idx" ON "kyc_verifications" USING btree ("provider","provider_reference");--> statement-breakpoint
CREATE UNIQUE INDEX "kyc_verifications_one_open_idx" ON "kyc_verifications" USING btree ("user_id") WHERE status in ('pending', 'action_required', 'needs_review');