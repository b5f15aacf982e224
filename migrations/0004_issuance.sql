CREATE TABLE "issuers" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"org_id" uuid NOT NULL,
	"legal_name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "offering_documents" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"offering_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"title" text NOT NULL,
	"version" integer NOT NULL,
	"content_type" text NOT NULL,
	"size_bytes" integer NOT NULL,
	"sha256" text NOT NULL,
	"storage_key" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "offerings" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"org_id" uuid NOT NULL,
	"issuer_id" uuid NOT NULL,
	"name" text NOT NULL,
	"exemption_type" text NOT NULL,
	"currency" text DEFAULT 'USD' NOT NULL,
	"target_amount_cents" bigint NOT NULL,
	"maximum_amount_cents" bigint NOT NULL,
	"minimum_investment_cents" bigint NOT NULL,
	"maximum_investment_cents" bigint,
	"deadline" date NOT NULL,
	"status" text DEFAULT 'draft' NOT NULL,
	"opened_at" timestamp with time zone,
	"closed_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "payment_events" (
	"id" text PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"subscription_id" uuid,
	"processed_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "security_classes" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"org_id" uuid NOT NULL,
	"offering_id" uuid NOT NULL,
	"name" text NOT NULL,
	"category" text NOT NULL,
	"price_per_unit_cents" bigint NOT NULL,
	"units_authorized" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "shares" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"org_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"subscription_id" uuid NOT NULL,
	"offering_id" uuid NOT NULL,
	"security_class_id" uuid NOT NULL,
	"units" integer NOT NULL,
	"price_per_unit_cents" bigint NOT NULL,
	"cost_basis_cents" bigint NOT NULL,
	"currency" text NOT NULL,
	"acquisition_type" text NOT NULL,
	"acquisition_date" date NOT NULL,
	"holding_period_end_date" date,
	"restricted" boolean NOT NULL,
	"restricted_until" date,
	"status" text DEFAULT 'active' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "subscription_transitions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"subscription_id" uuid NOT NULL,
	"from_status" text,
	"to_status" text NOT NULL,
	"actor" text NOT NULL,
	"reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "subscriptions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"org_id" uuid NOT NULL,
	"offering_id" uuid NOT NULL,
	"security_class_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"units" integer NOT NULL,
	"price_per_unit_cents" bigint NOT NULL,
	"amount_cents" bigint NOT NULL,
	"currency" text NOT NULL,
	"tranche_id" text,
	"payment_method" text NOT NULL,
	"accreditation_status" text NOT NULL,
	"suitability_confirmed" boolean NOT NULL,
	"risk_acknowledgment_signed" boolean NOT NULL,
	"status" text NOT NULL,
	"signature" jsonb,
	"checkout_session_id" text,
	"checkout_url" text,
	"checkout_attempts" integer DEFAULT 0 NOT NULL,
	"payment_intent_id" text,
	"payment_status" text DEFAULT 'none' NOT NULL,
	"funded_at" timestamp with time zone,
	"reviewed_by" text,
	"review_reason" text,
	"approved_at" timestamp with time zone,
	"completed_at" timestamp with time zone,
	"cancelled_at" timestamp with time zone,
	"cancel_reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "offering_documents" ADD CONSTRAINT "offering_documents_offering_id_offerings_id_fk" FOREIGN KEY ("offering_id") REFERENCES "public"."offerings"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "offerings" ADD CONSTRAINT "offerings_issuer_id_issuers_id_fk" FOREIGN KEY ("issuer_id") REFERENCES "public"."issuers"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "security_classes" ADD CONSTRAINT "security_classes_offering_id_offerings_id_fk" FOREIGN KEY ("offering_id") REFERENCES "public"."offerings"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "shares" ADD CONSTRAINT "shares_subscription_id_subscriptions_id_fk" FOREIGN KEY ("subscription_id") REFERENCES "public"."subscriptions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "shares" ADD CONSTRAINT "shares_offering_id_offerings_id_fk" FOREIGN KEY ("offering_id") REFERENCES "public"."offerings"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "shares" ADD CONSTRAINT "shares_security_class_id_security_classes_id_fk" FOREIGN KEY ("security_class_id") REFERENCES "public"."security_classes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "subscription_transitions" ADD CONSTRAINT "subscription_transitions_subscription_id_subscriptions_id_fk" FOREIGN KEY ("subscription_id") REFERENCES "public"."subscriptions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "subscriptions" ADD CONSTRAINT "subscriptions_offering_id_offerings_id_fk" FOREIGN KEY ("offering_id") REFERENCES "public"."offerings"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "subscriptions" ADD CONSTRAINT "subscriptions_security_class_id_security_classes_id_fk" FOREIGN KEY ("security_class_id") REFERENCES "public"."security_classes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "offering_documents_version_idx" ON "offering_documents" USING btree ("offering_id","kind","version");--> statement-breakpoint
CREATE INDEX "offerings_org_status_idx" ON "offerings" USING btree ("org_id","status");--> statement-breakpoint
CREATE INDEX "security_classes_offering_idx" ON "security_classes" USING btree ("offering_id");--> statement-breakpoint
CREATE UNIQUE INDEX "shares_subscription_idx" ON "shares" USING btree ("subscription_id");--> statement-breakpoint
CREATE INDEX "shares_user_idx" ON "shares" USING btree ("org_id","user_id");--> statement-breakpoint
CREATE INDEX "subscription_transitions_subscription_idx" ON "subscription_transitions" USING btree ("subscription_id","created_at");--> statement-breakpoint
CREATE INDEX "subscriptions_security_status_idx" ON "subscriptions" USING btree ("security_class_id","status");--> statement-breakpoint
CREATE INDEX "subscriptions_user_idx" ON "subscriptions" USING btree ("org_id","user_id","created_at");--> statement-breakpoint
CREATE INDEX "subscriptions_offering_idx" ON "subscriptions" USING btree ("offering_id","status");--> statement-breakpoint
CREATE UNIQUE INDEX "subscriptions_checkout_session_idx" ON "subscriptions" USING btree ("checkout_session_id");