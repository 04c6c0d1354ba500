DROP INDEX `messages_conversation_client_id`;--> statement-breakpoint
CREATE UNIQUE INDEX `messages_sender_client_id` ON `messages` (`conversation_id`,`sender_type`,`sender_id`,`client_msg_id`);