CREATE TABLE "stripe_double_idempotency_keys" (
	"key" text PRIMARY KEY NOT NULL,
	"request" text NOT NULL,
	"response" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "stripe_double_objects" (
	"id" text PRIMARY KEY NOT NULL,
	"seq" bigserial NOT NULL,
	"object_type" text NOT NULL,
	"related_id" text,
	"body" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "stripe_double_objects_related_idx" ON "stripe_double_objects" USING btree ("related_id");--> statement-breakpoint
CREATE INDEX "stripe_double_objects_type_idx" ON "stripe_double_objects" USING btree ("object_type","seq");