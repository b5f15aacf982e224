-- The tamper-evident audit log (docs/audit.md) and ledger corrections as transactions.
-- audit_entries is append-only and hash-chained per chain (one chain per org, `platform` for the
-- rest); audit_chains holds each chain's head, locked FOR UPDATE by every append; audit_anchors
-- holds signed checkpoints of the heads, so that deleting the newest entries is detectable.
CREATE TABLE "audit_chains" (
	"chain_id" text PRIMARY KEY NOT NULL,
	"org_id" uuid,
	"seq" bigint NOT NULL,
	"head_hash" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "audit_entries" (
	"id" uuid PRIMARY KEY NOT NULL,
	"chain_id" text NOT NULL,
	"seq" bigint NOT NULL,
	"org_id" uuid,
	"actor_kind" text NOT NULL,
	"actor_id" text,
	"action" text NOT NULL,
	"subject_type" text NOT NULL,
	"subject_id" text NOT NULL,
	"related" text[] NOT NULL,
	"request_id" text,
	"state_digest" text,
	"details" jsonb NOT NULL,
	"occurred_at" timestamp with time zone NOT NULL,
	"prev_hash" text NOT NULL,
	"hash" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "audit_anchors" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"chain_id" text NOT NULL,
	"seq" bigint NOT NULL,
	"head_hash" text NOT NULL,
	"signature" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "audit_entries_chain_seq_idx" ON "audit_entries" USING btree ("chain_id","seq");--> statement-breakpoint
CREATE INDEX "audit_entries_org_time_idx" ON "audit_entries" USING btree ("org_id","occurred_at");--> statement-breakpoint
CREATE INDEX "audit_entries_subject_idx" ON "audit_entries" USING btree ("subject_type","subject_id");--> statement-breakpoint
CREATE INDEX "audit_entries_related_idx" ON "audit_entries" USING gin ("related");--> statement-breakpoint
CREATE INDEX "audit_anchors_chain_idx" ON "audit_anchors" USING btree ("chain_id","seq");--> statement-breakpoint
-- A correction cancels a share entry (with its reason) and may re-issue another for the same
-- subscription: one live entry per subscription instead of one entry.
CREATE TABLE "share_cancellations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"org_id" uuid NOT NULL,
	"share_id" uuid NOT NULL,
	"reason" text NOT NULL,
	"reissued_share_id" uuid,
	"cancelled_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "shares" ADD COLUMN "replaces_share_id" uuid;--> statement-breakpoint
ALTER TABLE "share_cancellations" ADD CONSTRAINT "share_cancellations_share_id_shares_id_fk" FOREIGN KEY ("share_id") REFERENCES "public"."shares"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "share_cancellations" ADD CONSTRAINT "share_cancellations_reissued_share_id_shares_id_fk" FOREIGN KEY ("reissued_share_id") REFERENCES "public"."shares"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "share_cancellations_share_idx" ON "share_cancellations" USING btree ("share_id");--> statement-breakpoint
CREATE INDEX "share_cancellations_org_idx" ON "share_cancellations" USING btree ("org_id");--> statement-breakpoint
DROP INDEX "shares_subscription_idx";--> statement-breakpoint
CREATE UNIQUE INDEX "shares_subscription_live_idx" ON "shares" USING btree ("subscription_id") WHERE status <> 'cancelled';--> statement-breakpoint
CREATE INDEX "shares_subscription_idx" ON "shares" USING btree ("subscription_id");
--> statement-breakpoint
-- What the Open Cap Format's issuer object requires beyond the legal name (null until the back office sets them).
ALTER TABLE "issuers" ADD COLUMN "formation_date" date;--> statement-breakpoint
ALTER TABLE "issuers" ADD COLUMN "country_of_formation" text;--> statement-breakpoint
ALTER TABLE "issuers" ADD COLUMN "country_subdivision_of_formation" text;
