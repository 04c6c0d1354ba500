CREATE TABLE `agent_capacity` (
	`user_id` text PRIMARY KEY NOT NULL,
	`org_id` text NOT NULL,
	`capacity` integer DEFAULT 5 NOT NULL
);
--> statement-breakpoint
CREATE TABLE `agent_skills` (
	`org_id` text NOT NULL,
	`user_id` text NOT NULL,
	`queue_id` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `agent_skills_key` ON `agent_skills` (`user_id`,`queue_id`);--> statement-breakpoint
CREATE INDEX `agent_skills_queue` ON `agent_skills` (`queue_id`);--> statement-breakpoint
CREATE TABLE `devices` (
	`id` text PRIMARY KEY NOT NULL,
	`org_id` text NOT NULL,
	`channel_id` text NOT NULL,
	`external_id` text NOT NULL,
	`platform` text NOT NULL,
	`token` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `devices_token` ON `devices` (`channel_id`,`platform`,`token`);--> statement-breakpoint
CREATE INDEX `devices_user` ON `devices` (`channel_id`,`external_id`);--> statement-breakpoint
CREATE TABLE `push_credentials` (
	`channel_id` text PRIMARY KEY NOT NULL,
	`org_id` text NOT NULL,
	`fcm` text,
	`apns` text,
	`updated_at` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `queues` (
	`id` text PRIMARY KEY NOT NULL,
	`org_id` text NOT NULL,
	`name` text NOT NULL,
	`auto_assign` integer DEFAULT true NOT NULL,
	`business_hours` text,
	`closed_message` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `queues_org_name` ON `queues` (`org_id`,`name`);