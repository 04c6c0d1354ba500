/**
 * Running a channel's bot for one end-user message: load its settings (D1, cached briefly by the
 * caller), and ask the flow engine or the external bot for a turn. Appending the replies and
 * handing off are the conversation object's job (room.ts), so ordering stays in one place.
 */
import { and, eq } from "drizzle-orm";
import { hmacSha256Hex } from "../core/crypto";
import type { ConversationRef } from "../core/conversation-ref";
import type { Message } from "../core/message";
import { database, schema } from "../db/client";
import { BotSettings, WebhookBotAnswer, type WebhookBotConfig } from "./config";
import { flowTurn, type BotTurn } from "./flow";

export async function loadBot(env: Env, channelId: string): Promise<BotSettings | null> {
  const row = await database(env.DB)
    .select()
    .from(schema.bots)
    .where(and(eq(schema.bots.channel_id, channelId), eq(schema.bots.enabled, true)))
    .get();
  if (!row) return null;
  const parsed = BotSettings.safeParse({ kind: row.kind, enabled: row.enabled, config: JSON.parse(row.config) });
  if (!parsed.success) {
    console.error(JSON.stringify({ at: "bots.load", channel: channelId, error: "stored config no longer valid" }));
    return null;
  }
  return parsed.data;
}

export async function botTurn(bot: BotSettings, ref: ConversationRef, message: Message, misses: number, first: boolean): Promise<BotTurn> {
  if (bot.kind === "flow") return flowTurn(bot.config, message.content, misses, first);
  return webhookTurn(bot.config, ref, message);
}

/** An external bot that fails, times out or answers nonsense hands the customer to a human. */
async function webhookTurn(config: WebhookBotConfig, ref: ConversationRef, message: Message): Promise<BotTurn> {
  const body = JSON.stringify({ conversation_id: ref.id, end_user: ref.end_user, message });
  try {
    const res = await fetch(config.url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-parley-signature": await hmacSha256Hex(config.secret, body) },
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(config.timeout_ms),
    });
    if (!res.ok) throw new Error(`bot answered ${res.status}`);
    const answer = WebhookBotAnswer.parse(await res.json());
    return { replies: answer.replies, handoff: answer.handoff, nlp_class: answer.nlp_class ?? "", confidence: answer.confidence ?? 0, misses: 0 };
  } catch (err) {
    console.error(JSON.stringify({ at: "bots.webhook", conversation: ref.id, error: String(err) }));
    return { replies: [], handoff: true, nlp_class: "/BotUnavailable", confidence: 0, misses: 0 };
  }
}
