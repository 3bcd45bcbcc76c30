CREATE INDEX "api_keys_org_list_idx" ON "api_keys" USING btree ("org_id","created_at","id");--> statement-breakpoint
CREATE INDEX "automations_org_list_idx" ON "automations" USING btree ("org_id","created_at","id");--> statement-breakpoint
CREATE INDEX "deliveries_webhook_walk_idx" ON "deliveries" USING btree ("webhook_id","created_at","id");--> statement-breakpoint
CREATE INDEX "deliveries_webhook_status_walk_idx" ON "deliveries" USING btree ("webhook_id","status","created_at","id");--> statement-breakpoint
CREATE INDEX "feedback_integrations_org_list_idx" ON "feedback_integrations" USING btree ("org_id","created_at","id");--> statement-breakpoint
CREATE INDEX "webhooks_org_list_idx" ON "webhooks" USING btree ("org_id","created_at","id");--> statement-breakpoint
DROP INDEX "api_keys_org_idx";--> statement-breakpoint
DROP INDEX "automations_org_idx";--> statement-breakpoint
DROP INDEX "deliveries_webhook_created_idx";--> statement-breakpoint
DROP INDEX "deliveries_held_walk_idx";--> statement-breakpoint
DROP INDEX "feedback_integrations_org_idx";--> statement-breakpoint
DROP INDEX "webhooks_org_idx";
