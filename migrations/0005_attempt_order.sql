DROP INDEX "webhook_attempts_delivery_idx";--> statement-breakpoint
CREATE INDEX "webhook_attempts_delivery_created_idx" ON "webhook_attempts" USING btree ("delivery_id","created_at");--> statement-breakpoint
ALTER TABLE "webhook_attempts" DROP COLUMN "attempt_number";