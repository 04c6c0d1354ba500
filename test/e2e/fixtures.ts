// Shared set-up for the e2e flow tests: an organisation with keys, a seed-000 visitor over real
// HTTP, and bounded lookups of what the D1-backed inbox lists show.
import { randomUUID } from "node:crypto";
import { api, expectStatus, signupOrg, waitFor, type ApiResponse, type Client } from "./harness.ts";

export interface Org {
  agent: Client;
  /** Public key (`pk_...`): visitors on the default webchat channel. */
  pk: string;
  /** Secret key (`sk_...`) of the same agent: server-side agent API. */
  sk: string;
}

export async function newOrg(): Promise<Org> {
  const agent = await signupOrg();
  const [pk, sk] = await Promise.all([agent.createKey("public"), agent.createKey("secret")]);
  return { agent, pk: pk.key, sk: sk.key };
}

/** A fresh external id, so tests never share a conversation by accident. */
export const visitorId = (prefix = "v") => `${prefix}-${randomUUID().slice(0, 8)}`;

/** Seed 000's message shape. */
export interface DostiMessage {
  id: string;
  sender: string;
  senderName: string;
  message: string;
  timestamp: number;
}

/** A visitor on seed 000's stateless REST (`/api/chat/send`, `/api/chat/poll`). */
export function dostiVisitor(apiKey: string, id: string, name = "Visitor") {
  return {
    id,
    send: (message: string, extra: Record<string, unknown> = {}) =>
      api<{ success: boolean; message: DostiMessage; error?: any }>("/api/chat/send", { body: { apiKey, visitorId: id, visitorName: name, message, ...extra } }),
    /** GET poll; `wait` in seconds makes it a long-poll. */
    poll: (lastTimestamp = 0, wait?: number) =>
      api<{ success: boolean; messages: DostiMessage[] }>(
        `/api/chat/poll?apiKey=${encodeURIComponent(apiKey)}&visitorId=${encodeURIComponent(id)}&lastTimestamp=${lastTimestamp}${wait === undefined ? "" : `&wait=${wait}`}`,
      ),
    /** POST poll with the same fields as JSON. */
    pollPost: (lastTimestamp = 0, wait?: number) =>
      api<{ success: boolean; messages: DostiMessage[] }>("/api/chat/poll", {
        body: { apiKey, visitorId: id, lastTimestamp, ...(wait === undefined ? {} : { wait }) },
      }),
  };
}

/** A successful seed-000 send's message (throws with the body otherwise). */
export async function sent(res: Promise<ApiResponse<{ success: boolean; message: DostiMessage }>>): Promise<DostiMessage> {
  const r = expectStatus(await res, 200, "POST /api/chat/send");
  if (r.json.success !== true) throw new Error(`send: ${r.text}`);
  return r.json.message;
}

/** Waits (bounded) until the agent's inbox list `filter` shows the visitor's conversation, and returns it. */
export function listed(agent: Client, filter: "unassigned" | "mine" | "all", externalId: string, accept: (conv: any) => boolean = () => true) {
  return waitFor(
    async () => {
      const r = expectStatus(await agent.api<any[]>(`/api/conversations/?filter=${filter}`), 200, "list conversations");
      return r.json.find((c) => c.end_user.external_id === externalId && accept(c));
    },
    { message: `${externalId} listed under filter=${filter}` },
  );
}

/** Waits (bounded) until the inbox list `filter` no longer shows the conversation. */
export function unlisted(agent: Client, filter: "unassigned" | "mine" | "all", conversationId: string) {
  return waitFor(
    async () => {
      const r = expectStatus(await agent.api<any[]>(`/api/conversations/?filter=${filter}`), 200, "list conversations");
      return r.json.every((c) => c.id !== conversationId);
    },
    { message: `${conversationId} gone from filter=${filter}` },
  );
}
