-- Back-office console sign-ins (issue #16). The cookie carries a random token; only its keyed
-- hash is stored. A platform admin's session hangs off its admin key, an org admin's off the org
-- and user: deleting either ends the session.
CREATE TABLE "console_sessions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"token_digest" text NOT NULL,
	"admin_key_id" uuid CONSTRAINT "console_sessions_admin_key_id_admin_keys_id_fk" REFERENCES "admin_keys"("id") ON DELETE cascade,
	"org_id" uuid CONSTRAINT "console_sessions_org_id_orgs_id_fk" REFERENCES "orgs"("id") ON DELETE cascade,
	"user_id" uuid CONSTRAINT "console_sessions_user_id_users_id_fk" REFERENCES "users"("id") ON DELETE cascade,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE UNIQUE INDEX "console_sessions_token_digest_idx" ON "console_sessions" USING btree ("token_digest");
