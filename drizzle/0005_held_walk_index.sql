CREATE INDEX "deliveries_held_walk_idx" ON "deliveries" USING btree ("webhook_id","created_at","id") WHERE "deliveries"."status" = 'held';--> statement-breakpoint
DROP INDEX "deliveries_held_idx";