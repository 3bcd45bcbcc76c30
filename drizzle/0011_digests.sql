ALTER TABLE "deliveries" ADD COLUMN "digest_id" text;--> statement-breakpoint
ALTER TABLE "webhooks" ADD COLUMN "digest_after" integer;