/**
 * The built-in flow bot as a pure function: given its config, the end user's text and how many
 * times in a row it missed, it answers with replies, or hands off to a human.
 */
import type { MessageDraft } from "../core/message";
import type { FlowConfig } from "./config";

export interface BotTurn {
  replies: MessageDraft[];
  handoff: boolean;
  /** Seed 004's nlpClass: the intent's name, or "/CatchAll" for the fallback. */
  nlp_class: string;
  confidence: number;
  misses: number;
}

const words = (text: string) => text.toLowerCase().normalize("NFKC").split(/[^\p{L}\p{N}_-]+/u).filter(Boolean);

const matches = (text: string, keyword: string) => {
  const w = words(text);
  return keyword.includes(" ") ? text.toLowerCase().includes(keyword) : w.includes(keyword);
};

export function flowTurn(config: FlowConfig, text: string, previousMisses: number, firstOfSession: boolean): BotTurn {
  const greeting = firstOfSession && config.greeting ? [config.greeting] : [];
  if (config.handoff_keywords.some((k) => matches(text, k))) {
    return { replies: greeting, handoff: true, nlp_class: "/Handoff", confidence: 1, misses: 0 };
  }
  const intent = config.intents.find((i) => i.keywords.some((k) => matches(text, k)));
  if (intent) return { replies: [...greeting, intent.reply], handoff: false, nlp_class: intent.name, confidence: 1, misses: 0 };
  if (greeting.length > 0) return { replies: greeting, handoff: false, nlp_class: "/Greeting", confidence: 1, misses: 0 };
  const misses = previousMisses + 1;
  if (misses >= config.handoff_after_misses) return { replies: [], handoff: true, nlp_class: "/CatchAll", confidence: 0, misses: 0 };
  return { replies: [config.fallback], handoff: false, nlp_class: "/CatchAll", confidence: 0, misses };
}
