CREATE TABLE "alert_keys" (
	"key_hash" "bytea" PRIMARY KEY NOT NULL,
	"record_id" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "alert_keys" ADD CONSTRAINT "alert_keys_record_id_records_id_fk" FOREIGN KEY ("record_id") REFERENCES "public"."records"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "alert_keys_record_idx" ON "alert_keys" USING btree ("record_id");--> statement-breakpoint
CREATE INDEX "deliveries_finished_idx" ON "deliveries" USING btree (coalesce("delivered_at", "last_attempt_at", "created_at")) WHERE "deliveries"."status" in ('delivered', 'failed');--> statement-breakpoint
CREATE INDEX "deliveries_record_idx" ON "deliveries" USING btree ("record_id") WHERE "deliveries"."record_id" is not null;--> statement-breakpoint
CREATE INDEX "records_received_idx" ON "records" USING btree ("created_at");