ALTER TABLE `webhook_deliveries` ADD `event_id` text;--> statement-breakpoint
ALTER TABLE `webhook_deliveries` ADD `payload` text;--> statement-breakpoint
ALTER TABLE `webhooks` ADD `disabled_reason` text;--> statement-breakpoint
ALTER TABLE `webhooks` ADD `previous_secret` text;--> statement-breakpoint
ALTER TABLE `webhooks` ADD `previous_secret_expires_at` text;