CREATE TABLE "webhook_messages" (
	"id" uuid PRIMARY KEY NOT NULL,
	"org_id" uuid NOT NULL,
	"event_type" text NOT NULL,
	"body" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "webhook_messages_created_at_idx" ON "webhook_messages" USING btree ("created_at");--> statement-breakpoint
-- Each event's payload was copied into every delivery of it: keep one copy per event, as the body sent.
INSERT INTO "webhook_messages" ("id", "org_id", "event_type", "body", "created_at")
SELECT DISTINCT ON ("event_id") "event_id", "org_id", "event_type", "payload"::text, "created_at"
FROM "webhook_deliveries" ORDER BY "event_id", "created_at";--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_event_id_webhook_messages_id_fk" FOREIGN KEY ("event_id") REFERENCES "public"."webhook_messages"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "webhook_deliveries_event_idx" ON "webhook_deliveries" USING btree ("event_id");--> statement-breakpoint
ALTER TABLE "webhook_deliveries" DROP COLUMN "payload";