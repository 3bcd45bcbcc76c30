ALTER TABLE "deliveries" ADD COLUMN "leased_until" timestamp with time zone;--> statement-breakpoint
-- Room on each page for the claim's new row version, so claiming stays a heap-only (HOT) update.
ALTER TABLE "deliveries" SET (fillfactor = 80);
