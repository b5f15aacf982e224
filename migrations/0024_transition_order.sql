-- A subscription's status changes in insertion order. Approval changes the status twice in one
-- transaction (approved, then completed with the shares issued), so both rows carry the same
-- created_at and a list ordered by it alone came out either way. Existing rows are numbered by
-- created_at, completed after approved, before the column becomes an identity.
DROP INDEX "subscription_transitions_subscription_idx";--> statement-breakpoint
ALTER TABLE "subscription_transitions" ADD COLUMN "seq" bigint;--> statement-breakpoint
UPDATE "subscription_transitions" AS t SET "seq" = o.n
FROM (
  SELECT "id", row_number() OVER (ORDER BY "created_at", CASE WHEN "to_status" = 'completed' THEN 1 ELSE 0 END, "id") AS n
  FROM "subscription_transitions"
) AS o
WHERE o."id" = t."id";--> statement-breakpoint
ALTER TABLE "subscription_transitions" ALTER COLUMN "seq" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "subscription_transitions" ALTER COLUMN "seq" ADD GENERATED ALWAYS AS IDENTITY (sequence name "subscription_transitions_seq_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1);--> statement-breakpoint
SELECT setval('"subscription_transitions_seq_seq"', (SELECT coalesce(max("seq"), 0) + 1 FROM "subscription_transitions"), false);--> statement-breakpoint
CREATE INDEX "subscription_transitions_subscription_idx" ON "subscription_transitions" USING btree ("subscription_id","seq");
