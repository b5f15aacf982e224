CREATE TABLE "key_checks" (
	"kind" text NOT NULL,
	"key_id" text NOT NULL,
	"check_value" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "key_checks_kind_key_id_pk" PRIMARY KEY("kind","key_id")
);
