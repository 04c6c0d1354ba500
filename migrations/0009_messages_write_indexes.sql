DROP INDEX `messages_sender_client_id`;--> statement-breakpoint
DROP INDEX `messages_org`;