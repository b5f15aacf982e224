-- Every list's filter and sort has an index, so a page costs the same at 1 M rows as at 10 k:
-- without them the review queues and the status filters read the whole org and sort it. Each
-- index leads with the org (the tenant boundary of every list), then the filter, then the time
-- the list is ordered by. Three indexes are replaced by ones with the sort column appended: the
-- longer index serves every query the shorter one did.
DROP INDEX "accreditations_review_idx";--> statement-breakpoint
DROP INDEX "kyc_verifications_org_status_idx";--> statement-breakpoint
DROP INDEX "shares_user_idx";--> statement-breakpoint
-- Accreditation review queue, oldest submission first: one org's, or across orgs (platform admin).
CREATE INDEX "accreditations_review_idx" ON "accreditations" USING btree ("org_id","review_status","submitted_at");--> statement-breakpoint
CREATE INDEX "accreditations_review_all_idx" ON "accreditations" USING btree ("review_status","submitted_at");--> statement-breakpoint
-- KYC verifications, newest first, optionally by status.
CREATE INDEX "kyc_verifications_org_status_idx" ON "kyc_verifications" USING btree ("org_id","status","created_at");--> statement-breakpoint
CREATE INDEX "kyc_verifications_org_created_idx" ON "kyc_verifications" USING btree ("org_id","created_at");--> statement-breakpoint
-- Deliveries log filters (by endpoint already has one), newest first; retention reads oldest first.
CREATE INDEX "webhook_deliveries_org_status_idx" ON "webhook_deliveries" USING btree ("org_id","status","created_at");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_org_event_type_idx" ON "webhook_deliveries" USING btree ("org_id","event_type","created_at");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_created_at_idx" ON "webhook_deliveries" USING btree ("created_at");--> statement-breakpoint
-- Offerings list, newest first (status filters use offerings_org_status_idx).
CREATE INDEX "offerings_org_created_idx" ON "offerings" USING btree ("org_id","created_at");--> statement-breakpoint
-- Subscriptions: the org's (admin queue), by status, by offering, newest first.
CREATE INDEX "subscriptions_org_created_idx" ON "subscriptions" USING btree ("org_id","created_at");--> statement-breakpoint
CREATE INDEX "subscriptions_org_status_created_idx" ON "subscriptions" USING btree ("org_id","status","created_at");--> statement-breakpoint
CREATE INDEX "subscriptions_offering_created_idx" ON "subscriptions" USING btree ("offering_id","created_at");--> statement-breakpoint
-- A user's shares, newest first.
CREATE INDEX "shares_user_idx" ON "shares" USING btree ("org_id","user_id","created_at");
