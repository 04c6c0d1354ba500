/**
 * Bot configuration, one bot per channel (D1 `bots`), validated with zod:
 * - `flow`: Parley's built-in flow bot (greeting, keyword intents answering with any seed 001
 *   message type, a fallback, and hand-off to a human on request or after N misses);
 * - `webhook`: an external bot, POSTed each end-user message, answering with replies.
 */
import { z } from "zod";
import { MessageInput, safeText } from "../core/message";

/** A reply is any message an agent could send (validated exactly like one). */
export const BotReply = MessageInput.refine((m) => !m.private, { message: "bot replies are public" });

const keyword = safeText(200).pipe(z.string().trim().min(1).toLowerCase());

export const FlowConfig = z.object({
  greeting: BotReply.optional(),
  intents: z
    .array(z.object({ name: safeText(100).pipe(z.string().min(1)), keywords: z.array(keyword).min(1).max(50), reply: BotReply }))
    .max(100)
    .default([]),
  fallback: BotReply.prefault({ content: "Sorry, I did not understand that." }),
  handoff_keywords: z.array(keyword).max(50).default(["agent", "human", "operator"]),
  handoff_after_misses: z.number().int().min(1).max(10).default(2),
  handoff_message: safeText(1000).default("Connecting you to an agent…"),
  no_agent_message: safeText(1000).default("No agent is available right now. Leave a message and we will get back to you."),
});

export const WebhookBotConfig = z.object({
  url: z.string().max(2048).refine((u) => /^https?:\/\//i.test(u) && URL.canParse(u), { message: "must be an http(s) URL" }),
  /** Shared secret: Parley signs each call with X-Parley-Signature: hex(HMAC-SHA256(secret, body)). */
  secret: z.string().min(16).max(200),
  timeout_ms: z.number().int().min(500).max(10_000).default(3_000),
});

export const BotSettings = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("flow"), enabled: z.boolean().default(true), config: FlowConfig }),
  z.object({ kind: z.literal("webhook"), enabled: z.boolean().default(true), config: WebhookBotConfig }),
]);

export type FlowConfig = z.output<typeof FlowConfig>;
export type WebhookBotConfig = z.output<typeof WebhookBotConfig>;
export type BotSettings = z.output<typeof BotSettings>;

/** What the answering external bot may return. */
export const WebhookBotAnswer = z.object({
  replies: z.array(BotReply).max(10).default([]),
  handoff: z.boolean().default(false),
  nlp_class: z.string().max(200).optional(),
  confidence: z.number().optional(),
});
