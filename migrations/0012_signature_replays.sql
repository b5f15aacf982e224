CREATE TABLE "ks_signature_replays" (
	"signature_digest" text PRIMARY KEY NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "ks_signature_replays_expires_idx" ON "ks_signature_replays" USING btree ("expires_at");