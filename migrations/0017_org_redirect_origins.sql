-- Per-org allowed redirect origins (where hosted pages such as Stripe Checkout may send an org's
-- users back to), and the return URLs an open checkout session was created with, so that a request
-- with other URLs replaces the session instead of silently keeping the old ones.
ALTER TABLE "orgs" ADD COLUMN "redirect_origins" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "subscriptions" ADD COLUMN "checkout_success_url" text;--> statement-breakpoint
ALTER TABLE "subscriptions" ADD COLUMN "checkout_cancel_url" text;