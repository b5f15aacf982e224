-- Running totals: the offerings list and get, and the oversell check of every subscription create,
-- read these instead of summing the subscriptions on each request. Every subscription change that
-- moves them moves them in its own transaction (src/issuance/offerings/totals.repo.ts); this
-- migration fills them from the subscriptions already there, set-based, before the check that
-- keeps a class's units held within its units authorized.
CREATE TABLE "offering_investors" (
	"offering_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"holding_subscriptions" integer DEFAULT 0 NOT NULL,
	"accredited_subscriptions" integer DEFAULT 0 NOT NULL,
	"committed_cents" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "offering_investors_offering_id_user_id_pk" PRIMARY KEY("offering_id","user_id")
);
--> statement-breakpoint
ALTER TABLE "offerings" ADD COLUMN "committed_cents" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "offerings" ADD COLUMN "raised_cents" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "offerings" ADD COLUMN "investors" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "offerings" ADD COLUMN "accredited_investors" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "security_classes" ADD COLUMN "units_held" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "offering_investors" ADD CONSTRAINT "offering_investors_offering_id_offerings_id_fk" FOREIGN KEY ("offering_id") REFERENCES "public"."offerings"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
-- Indexes the lists lacked at 1 M rows (bench/scale.ts, checked with EXPLAIN): an investor's
-- subscriptions in one offering, and the platform admin's queues across orgs (by status, newest
-- first). The two indexes that served only the sums the running totals replace are dropped.
DROP INDEX "subscriptions_security_status_idx";--> statement-breakpoint
DROP INDEX "subscriptions_offering_idx";--> statement-breakpoint
CREATE INDEX "kyc_verifications_status_created_idx" ON "kyc_verifications" USING btree ("status","created_at");--> statement-breakpoint
CREATE INDEX "subscriptions_offering_user_idx" ON "subscriptions" USING btree ("offering_id","user_id","created_at");--> statement-breakpoint
CREATE INDEX "subscriptions_status_created_idx" ON "subscriptions" USING btree ("status","created_at");--> statement-breakpoint
-- Backfill. Subscriptions that hold units: draft, pending_signature, pending_payment,
-- pending_review, approved, completed (HOLDING_STATUSES); funded: the last three (FUNDED_STATUSES).
INSERT INTO "offering_investors" ("offering_id", "user_id", "holding_subscriptions", "accredited_subscriptions", "committed_cents")
SELECT "offering_id", "user_id", count(*), count(*) FILTER (WHERE "accreditation_status" = 'accredited'), sum("amount_cents")
FROM "subscriptions"
WHERE "status" IN ('draft', 'pending_signature', 'pending_payment', 'pending_review', 'approved', 'completed')
GROUP BY "offering_id", "user_id";--> statement-breakpoint
UPDATE "offerings" AS o
SET "committed_cents" = s."committed", "raised_cents" = s."raised"
FROM (
	SELECT "offering_id",
		coalesce(sum("amount_cents") FILTER (WHERE "status" IN ('draft', 'pending_signature', 'pending_payment', 'pending_review', 'approved', 'completed')), 0) AS "committed",
		coalesce(sum("amount_cents") FILTER (WHERE "status" IN ('pending_review', 'approved', 'completed')), 0) AS "raised"
	FROM "subscriptions"
	GROUP BY "offering_id"
) AS s
WHERE o."id" = s."offering_id";--> statement-breakpoint
UPDATE "offerings" AS o
SET "investors" = i."investors", "accredited_investors" = i."accredited"
FROM (
	SELECT "offering_id", count(*) AS "investors", count(*) FILTER (WHERE "accredited_subscriptions" > 0) AS "accredited"
	FROM "offering_investors"
	WHERE "holding_subscriptions" > 0
	GROUP BY "offering_id"
) AS i
WHERE o."id" = i."offering_id";--> statement-breakpoint
UPDATE "security_classes" AS c
SET "units_held" = s."units"
FROM (
	SELECT "security_class_id", sum("units") AS "units"
	FROM "subscriptions"
	WHERE "status" IN ('draft', 'pending_signature', 'pending_payment', 'pending_review', 'approved', 'completed')
	GROUP BY "security_class_id"
) AS s
WHERE c."id" = s."security_class_id";--> statement-breakpoint
ALTER TABLE "security_classes" ADD CONSTRAINT "security_classes_units_held_check" CHECK ("security_classes"."units_held" >= 0 and "security_classes"."units_held" <= "security_classes"."units_authorized");
