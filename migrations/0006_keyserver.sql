CREATE TABLE "mail_outbox" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"recipient" text NOT NULL,
	"subject" text NOT NULL,
	"body" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ks_accounts" (
	"id" text PRIMARY KEY NOT NULL,
	"is_master" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ks_blobs" (
	"id" text PRIMARY KEY NOT NULL,
	"type" integer NOT NULL,
	"owner_id" text NOT NULL,
	"value" text NOT NULL,
	"creator_role_id" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "ks_documents" (
	"key" text PRIMARY KEY NOT NULL,
	"type" integer NOT NULL,
	"owner_id" text NOT NULL,
	"content_type" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ks_factors" (
	"id" serial PRIMARY KEY NOT NULL,
	"wallet_pk" uuid NOT NULL,
	"type" text NOT NULL,
	"priority" integer DEFAULT 0 NOT NULL,
	"account_id" text,
	"salt" text,
	"keychain_data" text,
	"secret_key_id" text,
	"secret_wrapped_key" text,
	"secret_ciphertext" text,
	"last_used_step" bigint,
	"failed_attempts" integer DEFAULT 0 NOT NULL,
	"locked_until" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ks_identities" (
	"id" serial PRIMARY KEY NOT NULL,
	"address" text NOT NULL,
	"email" text,
	"phone_number" text,
	"telegram_username" text,
	"passport" text,
	"status" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ks_identity_settings" (
	"identity_id" integer NOT NULL,
	"key" text NOT NULL,
	"value" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ks_identity_settings_identity_id_key_pk" PRIMARY KEY("identity_id","key")
);
--> statement-breakpoint
CREATE TABLE "ks_invites" (
	"id" serial PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"email" text NOT NULL,
	"sale_id" text DEFAULT '' NOT NULL,
	"creator_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ks_sessions" (
	"id" text PRIMARY KEY NOT NULL,
	"wallet_pk" uuid NOT NULL,
	"key_id" text NOT NULL,
	"wrapped_key" text NOT NULL,
	"ciphertext" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ks_signers" (
	"account_id" text NOT NULL,
	"public_key" text NOT NULL,
	"role_id" bigint NOT NULL,
	"weight" integer NOT NULL,
	"identity" integer NOT NULL,
	"details" text DEFAULT '{}' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ks_signers_account_id_public_key_pk" PRIMARY KEY("account_id","public_key")
);
--> statement-breakpoint
CREATE TABLE "ks_tfa_challenges" (
	"token" text PRIMARY KEY NOT NULL,
	"wallet_pk" uuid NOT NULL,
	"factor_id" integer NOT NULL,
	"verified" boolean DEFAULT false NOT NULL,
	"code_digest" text,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ks_transactions" (
	"hash" text PRIMARY KEY NOT NULL,
	"account_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ks_wallets" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"wallet_id" text NOT NULL,
	"email" text NOT NULL,
	"account_id" text NOT NULL,
	"current_account_id" text NOT NULL,
	"salt" text NOT NULL,
	"keychain_data" text NOT NULL,
	"kdf_version" integer NOT NULL,
	"verified" boolean DEFAULT false NOT NULL,
	"verification_digest" text,
	"verification_sent_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "ks_factors" ADD CONSTRAINT "ks_factors_wallet_pk_ks_wallets_id_fk" FOREIGN KEY ("wallet_pk") REFERENCES "public"."ks_wallets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ks_identities" ADD CONSTRAINT "ks_identities_address_ks_accounts_id_fk" FOREIGN KEY ("address") REFERENCES "public"."ks_accounts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ks_identity_settings" ADD CONSTRAINT "ks_identity_settings_identity_id_ks_identities_id_fk" FOREIGN KEY ("identity_id") REFERENCES "public"."ks_identities"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ks_sessions" ADD CONSTRAINT "ks_sessions_wallet_pk_ks_wallets_id_fk" FOREIGN KEY ("wallet_pk") REFERENCES "public"."ks_wallets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ks_signers" ADD CONSTRAINT "ks_signers_account_id_ks_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."ks_accounts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ks_tfa_challenges" ADD CONSTRAINT "ks_tfa_challenges_wallet_pk_ks_wallets_id_fk" FOREIGN KEY ("wallet_pk") REFERENCES "public"."ks_wallets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ks_tfa_challenges" ADD CONSTRAINT "ks_tfa_challenges_factor_id_ks_factors_id_fk" FOREIGN KEY ("factor_id") REFERENCES "public"."ks_factors"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "ks_wallets" ADD CONSTRAINT "ks_wallets_account_id_ks_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."ks_accounts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "mail_outbox_recipient_idx" ON "mail_outbox" USING btree ("recipient","created_at");--> statement-breakpoint
CREATE INDEX "ks_blobs_owner_idx" ON "ks_blobs" USING btree ("owner_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_factors_one_per_type_idx" ON "ks_factors" USING btree ("wallet_pk","type");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_identities_address_idx" ON "ks_identities" USING btree ("address");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_identities_email_idx" ON "ks_identities" USING btree ("email");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_identities_phone_idx" ON "ks_identities" USING btree ("phone_number");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_identities_telegram_idx" ON "ks_identities" USING btree ("telegram_username");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_invites_email_sale_idx" ON "ks_invites" USING btree ("email","type","sale_id");--> statement-breakpoint
CREATE INDEX "ks_invites_sale_idx" ON "ks_invites" USING btree ("sale_id");--> statement-breakpoint
CREATE INDEX "ks_sessions_wallet_idx" ON "ks_sessions" USING btree ("wallet_pk");--> statement-breakpoint
CREATE INDEX "ks_signers_public_key_idx" ON "ks_signers" USING btree ("public_key");--> statement-breakpoint
CREATE INDEX "ks_tfa_challenges_wallet_idx" ON "ks_tfa_challenges" USING btree ("wallet_pk");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_wallets_wallet_id_idx" ON "ks_wallets" USING btree ("wallet_id");--> statement-breakpoint
CREATE UNIQUE INDEX "ks_wallets_email_idx" ON "ks_wallets" USING btree ("email");--> statement-breakpoint
CREATE INDEX "ks_wallets_account_idx" ON "ks_wallets" USING btree ("account_id");