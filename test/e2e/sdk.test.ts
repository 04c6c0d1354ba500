// The Web SDK (seed 003, sdk/) as a real client in Node against `wrangler dev`: connect and
// initialized, account status, sends resolved to stored messages, agent replies, a dropped
// connection while agents write (resume with since/epoch, a resync over REST, a position past the
// server's log), typing both ways, read positions across tabs, uploads, refusals, and the built
// ESM / script-tag bundles;
// Parley's extensions the widget is built on (chatUpload, the queue, identify, agent read
// receipts, reconnectNow).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import NodeWebSocket from "ws";
import { createClient, ParleyError, type ClientOptions, type Message, type ParleyClient, type ParleyEventName, type ParleyEvents } from "../../sdk/src/index.ts";
import { api, baseUrl, expectStatus, waitFor } from "./harness.ts";
import { newOrg, visitorId, type Org } from "./fixtures.ts";
import { SocketPool } from "./ws-client.ts";

type Sdk = typeof import("../../sdk/src/index.ts");

const sockets = new SocketPool();
const clients: ParleyClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await sockets.closeAll();
});

const EVENTS: ParleyEventName[] = [
  "initialized",
  "account.status_updated",
  "chat.message_received",
  "chat.agent_typing",
  "chat.contact_read",
  "chat.session_updated",
  "chat.queue_updated",
  "chat.agent_read",
  "connection.state_changed",
  "error",
];

/** Every event a client emits, in order. */
class Recorder {
  readonly log: { name: ParleyEventName; data: unknown }[] = [];
  constructor(client: Pick<ParleyClient, "on">) {
    for (const name of EVENTS) client.on(name, (data) => this.log.push({ name, data }));
  }
  of<E extends ParleyEventName>(name: E): ParleyEvents[E][] {
    return this.log.filter((e) => e.name === name).map((e) => e.data as ParleyEvents[E]);
  }
  wait<E extends ParleyEventName>(name: E, pred: (d: ParleyEvents[E]) => boolean = () => true, timeoutMs = 8_000) {
    return waitFor(() => this.of(name).find(pred), { timeoutMs, message: `event ${name}` });
  }
  /** The ids of chat.message_received, in order. */
  received(): string[] {
    return this.of("chat.message_received").map((d) => d.message.id);
  }
}

function open(o: Org, opts: Partial<ClientOptions> = {}) {
  const c = createClient({ host: baseUrl(), key: o.pk, reconnect: { minDelayMs: 100, maxDelayMs: 400 }, ...opts });
  clients.push(c);
  return { c, rec: new Recorder(c) };
}

/**
 * A WebSocket (the `ws` package, through the SDK's WebSocket option) whose network the test
 * controls: drop() cuts the live connection (no closing handshake, like a lost network) and,
 * until `offline` is cleared, every new connection goes to a closed port and is refused.
 */
function flakyNetwork() {
  const net = {
    offline: false,
    urls: [] as string[],
    sockets: [] as NodeWebSocket[],
    WebSocket: class extends NodeWebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(net.offline ? "ws://127.0.0.1:9/" : url, protocols);
        if (!net.offline) net.urls.push(String(url));
        net.sockets.push(this);
      }
    },
    /** Cuts the current connection. */
    cut() {
      net.sockets.at(-1)!.terminate();
    },
    drop() {
      net.offline = true;
      net.cut();
    },
  };
  return net;
}

async function agentSends(o: Org, conversationId: string, content: string): Promise<Message> {
  return expectStatus(await o.agent.api<Message>(`/api/conversations/${conversationId}/messages`, { body: { content } }), 201, "agent send").json;
}

/** A client on a network the test controls, connected, that has received one agent message. */
async function receivedOne(o: Org, name: string) {
  const net = flakyNetwork();
  const { c, rec } = open(o, { visitorId: visitorId(name), WebSocket: net.WebSocket });
  const init = await c.connect();
  const first = await agentSends(o, init.conversation.id, "first");
  await rec.wait("chat.message_received", (d) => d.message.id === first.id);
  return { net, c, rec, init, first };
}

const text = (t: string) => ({ content: { type: "text" as const, text: t } });
const ids = (list: { id: string }[]) => list.map((m) => m.id);

/** No message id was ever delivered twice. */
function expectEachOnce(rec: Recorder) {
  const all = rec.received();
  expect(new Set(all).size).toBe(all.length);
}

describe("connect and account status", () => {
  it("connect() resolves with initialized (offline, a server-made visitor id); an agent's inbox makes it online, closing it offline; the stored id finds the same conversation", async () => {
    const o = await newOrg();
    const { c, rec } = open(o, { name: "Ann" });
    expect(c.state).toBe("idle");
    const init = await c.connect();
    expect(c.visitorId).toEqual(expect.any(String));
    expect(init).toEqual({
      account: { status: "offline" },
      visitor: { id: c.visitorId, name: "Ann" },
      conversation: { id: expect.any(String), session: null },
      messages: [],
      read: { contact_read_seq: 0 },
      reconnected: false,
      typing_preview: false,
    });
    expect(c.state).toBe("connected");
    expect(await rec.wait("initialized")).toEqual(init);
    expect(c.connect()).toBe(c.connect()); // one connection, one promise

    const inbox = await sockets.connect("/ws/org", { cookie: o.agent.cookie });
    expect(await rec.wait("account.status_updated")).toBe("online");
    expect(c.accountStatus).toBe("online");
    await inbox.close();
    await waitFor(() => rec.of("account.status_updated").length === 2, { message: "offline again" });
    expect(rec.of("account.status_updated")).toEqual(["online", "offline"]);

    // The caller stored the id: the next visit is the same visitor in the same conversation.
    const again = open(o, { visitorId: c.visitorId! });
    const init2 = await again.c.connect();
    expect(init2.conversation.id).toBe(init.conversation.id);
    expect(init2.visitor).toEqual({ id: c.visitorId, name: "Ann" });
    expect(rec.of("initialized")).toHaveLength(1);
    expect(rec.of("error")).toEqual([]);
  });
});

describe("messages", () => {
  it("chatMessage resolves with the stored message before chat.message_received brings the same id, once; an agent reply arrives", async () => {
    const o = await newOrg();
    const vid = visitorId("sdk");
    const { c, rec } = open(o, { visitorId: vid, name: "Ann" });
    const init = await c.connect();

    const sent = await c.chatMessage(text("Hello"));
    expect(rec.received()).toEqual([]); // the caller has it first, the event follows
    expect(sent).toEqual({
      id: expect.any(String),
      conversation_id: init.conversation.id,
      session_id: expect.any(String),
      seq: 1,
      sender_type: "end_user",
      sender_id: vid,
      sender_name: "Ann",
      content_type: "text",
      content: "Hello",
      rich_media: null,
      client_msg_id: expect.any(String),
      private: false,
      status: "SENT",
      created_at: expect.any(String),
    });
    expect((await rec.wait("chat.message_received")).message).toEqual(sent);
    expect((await rec.wait("chat.session_updated")).session).toMatchObject({ id: sent.session_id, status: "open" });

    const reply = await agentSends(o, init.conversation.id, "Hi Ann, how can I help?");
    const got = await rec.wait("chat.message_received", (d) => d.message.id === reply.id);
    expect(got.message).toMatchObject({ seq: 2, sender_type: "agent", sender_id: o.agent.user.id, sender_name: "E2E Agent", content: "Hi Ann, how can I help?" });
    await sleep(200);
    expect(rec.received()).toEqual([sent.id, reply.id]);
    expect(ids(c.messages)).toEqual([sent.id, reply.id]);
    expect(c.unreadCount).toBe(1);

    // The agent's view has the same log.
    const history = expectStatus(await o.agent.api<Message[]>(`/api/conversations/${init.conversation.id}/messages`), 200, "history").json;
    expect(ids(history)).toEqual([sent.id, reply.id]);
  });

  it("a connection dropped while the agent sends 3 messages: initialized again, the 3 arrive once each in order (resumed with since/epoch), and a message written offline is sent after the reconnect", async () => {
    const o = await newOrg();
    const net = flakyNetwork();
    const { c, rec } = open(o, { visitorId: visitorId("drop"), WebSocket: net.WebSocket });
    const init = await c.connect();
    const cid = init.conversation.id;
    const hello = await c.chatMessage(text("before the drop"));
    await rec.wait("chat.message_received", (d) => d.message.id === hello.id);

    net.drop();
    await waitFor(() => c.state === "reconnecting", { message: "reconnecting" });
    const replies = [];
    for (const n of [1, 2, 3]) replies.push(await agentSends(o, cid, `reply ${n}`));
    const offline = c.chatMessage(text("written while offline"));
    await waitFor(() => net.sockets.length >= 3, { message: "reconnect attempts while offline" });
    expect(rec.received()).toEqual([hello.id]);
    expect(rec.of("initialized")).toHaveLength(1);

    net.offline = false;
    const again = await rec.wait("initialized", (d) => d.reconnected);
    expect(again).toMatchObject({ account: { status: "offline" }, conversation: { id: cid }, read: { contact_read_seq: 0 } });
    expect(ids(again.messages)).toEqual([hello.id, ...ids(replies)]);
    const late = await offline;
    expect(late).toMatchObject({ seq: 5, content: "written while offline", sender_type: "end_user" });
    await waitFor(() => rec.received().length === 5, { message: "all messages received" });
    await sleep(200);
    expect(rec.received()).toEqual([hello.id, ...ids(replies), late.id]);
    expect(rec.of("chat.message_received").slice(1, 4).map((d) => d.message.content)).toEqual(["reply 1", "reply 2", "reply 3"]);
    // The reconnect resumed from the last seq seen, in the same epoch.
    const resume = new URL(net.urls.at(-1)!);
    expect(resume.searchParams.get("since")).toBe("1");
    expect(resume.searchParams.get("epoch")).toEqual(expect.any(String));
    const states = rec.of("connection.state_changed").map((d) => d.state);
    expect(states).toEqual(["connecting", "connected", "reconnecting", "connected"]);

    // A send cut off by a drop (maybe stored, its ack lost) resolves once, stored once.
    const cut = c.chatMessage(text("cut off"));
    net.cut();
    const cutMsg = await cut;
    await rec.wait("chat.message_received", (d) => d.message.id === cutMsg.id);
    expect(rec.of("initialized")).toHaveLength(3);
    const history = expectStatus(await o.agent.api<Message[]>(`/api/conversations/${cid}/messages`), 200, "history").json;
    expect(history.map((m) => m.content)).toEqual(["before the drop", "reply 1", "reply 2", "reply 3", "written while offline", "cut off"]);
    expectEachOnce(rec);
    expect(rec.of("error")).toEqual([]);
  });

  it("when the server asks for a resync (stale epoch), the history comes over REST: initialized has it all, the missed messages arrive once", async () => {
    const o = await newOrg();
    const { net, c, rec, init, first } = await receivedOne(o, "resync");

    // As if the conversation's object had a new epoch: our seq numbers mean nothing there.
    (c as unknown as { epoch: string }).epoch = "stale-epoch";
    net.drop();
    await waitFor(() => c.state === "reconnecting", { message: "reconnecting" });
    const missed = [await agentSends(o, init.conversation.id, "missed 1"), await agentSends(o, init.conversation.id, "missed 2")];
    net.offline = false;

    const again = await rec.wait("initialized", (d) => d.reconnected);
    expect(new URL(net.urls.at(-1)!).searchParams.get("epoch")).toBe("stale-epoch");
    expect(ids(again.messages)).toEqual([first.id, ...ids(missed)]);
    await waitFor(() => rec.received().length === 3, { message: "missed messages" });
    expect(rec.received()).toEqual([first.id, ...ids(missed)]);
    // Live again, from the server's real epoch.
    const after = await agentSends(o, init.conversation.id, "after");
    await rec.wait("chat.message_received", (d) => d.message.id === after.id);
    expectEachOnce(rec);
    expect(rec.of("error")).toEqual([]);
  });
  it("a position beyond the server's log (invalid_seq, then close 4400): the client starts over at once, on the error frame, and initialized has the whole history", async () => {
    const o = await newOrg();
    const { net, c, rec, init, first } = await receivedOne(o, "beyond");

    // As if the conversation's object had lost its log: our last seq is past its head.
    (c as unknown as { lastSeq: number }).lastSeq = 999;
    const cutAt = Date.now();
    net.cut();
    const again = await rec.wait("initialized", (d) => d.reconnected, 8_000);
    // The close event of the refused socket comes only when its connection ends (10 s after the
    // close frame under workerd): the client reconnected on the frame before it.
    expect(Date.now() - cutAt).toBeLessThan(8_000);
    expect(net.urls.some((u) => new URL(u).searchParams.get("since") === "999")).toBe(true);
    expect(new URL(net.urls.at(-1)!).searchParams.get("since")).toBeNull();
    expect(ids(again.messages)).toEqual([first.id]);
    const after = await agentSends(o, init.conversation.id, "after");
    await rec.wait("chat.message_received", (d) => d.message.id === after.id);
    expectEachOnce(rec);
    expect(rec.of("error")).toEqual([]);
  });
});

describe("typing and read positions", () => {
  it("typing both ways; the visitor's own typing in another tab is not an agent typing", async () => {
    const o = await newOrg();
    const vid = visitorId("typing");
    const { c, rec } = open(o, { visitorId: vid, name: "Ann" });
    const tab2 = open(o, { visitorId: vid, name: "Ann" });
    const init = await c.connect();
    await tab2.c.connect();
    const agent = await sockets.connect(`/ws/conversations/${init.conversation.id}`, { cookie: o.agent.cookie });
    await agent.nextOfType("ready");

    expect(c.chatTyping(true)).toBe(true);
    expect(c.chatTyping(true)).toBe(true); // a keystroke later: no second frame within 3 s
    expect(await agent.nextOfType("typing")).toEqual({ type: "typing", sender_type: "end_user", sender_id: vid, sender_name: "Ann", typing: true });
    expect(c.chatTyping(false)).toBe(true);
    expect(await agent.nextOfType("typing")).toEqual({ type: "typing", sender_type: "end_user", sender_id: vid, sender_name: "Ann", typing: false });
    expect(await agent.sync()).toEqual([]);

    agent.send({ type: "typing", typing: true });
    expect(await rec.wait("chat.agent_typing")).toEqual({ typing: true, agent: { id: o.agent.user.id, name: "E2E Agent", type: "agent" } });
    agent.send({ type: "typing", typing: false });
    expect(await rec.wait("chat.agent_typing", (d) => !d.typing)).toEqual({ typing: false, agent: { id: o.agent.user.id, name: "E2E Agent", type: "agent" } });
    await tab2.rec.wait("chat.agent_typing", (d) => !d.typing);
    expect(tab2.rec.of("chat.agent_typing").map((d) => d.typing)).toEqual([true, false]);
  });

  it("chatRead sends the last seq seen; the visitor's other tab (and this one) get chat.contact_read; a later tab starts from it", async () => {
    const o = await newOrg();
    const vid = visitorId("read");
    const tab1 = open(o, { visitorId: vid });
    const tab2 = open(o, { visitorId: vid });
    const init = await tab1.c.connect();
    await tab2.c.connect();
    expect(tab1.c.chatRead()).toBeNull(); // nothing to read yet

    const mine = await tab1.c.chatMessage(text("question"));
    const answers = [await agentSends(o, init.conversation.id, "answer 1"), await agentSends(o, init.conversation.id, "answer 2")];
    for (const t of [tab1, tab2]) await waitFor(() => t.rec.received().length === 3, { message: "3 messages in each tab" });
    expect(tab2.rec.received()).toEqual([mine.id, ...ids(answers)]);
    expect(tab2.c.unreadCount).toBe(2);

    const agent = await sockets.connect(`/ws/conversations/${init.conversation.id}`, { cookie: o.agent.cookie });
    await agent.nextOfType("ready");
    expect(tab1.c.chatRead()).toBe(answers[1]!.seq);
    expect(await tab2.rec.wait("chat.contact_read")).toEqual({ contact_read_seq: 3 });
    expect(await tab1.rec.wait("chat.contact_read")).toEqual({ contact_read_seq: 3 });
    expect(tab2.c.unreadCount).toBe(0);
    expect(await agent.nextOfType("read")).toEqual({ type: "read", reader_type: "end_user", reader_id: vid, seq: 3 });

    const tab3 = open(o, { visitorId: vid });
    const init3 = await tab3.c.connect();
    expect(init3.read).toEqual({ contact_read_seq: 3 });
    expect(init3.messages.map((m) => [m.seq, m.status])).toEqual([
      [1, "SENT"],
      [2, "READ"],
      [3, "READ"],
    ]);
    expect(tab3.c.unreadCount).toBe(0);
    for (const t of [tab1, tab2]) expectEachOnce(t.rec);
  });
});

describe("uploads", () => {
  it("chatUploadInit -> PUT the bytes -> chatUploadFinish: an image message, delivered once; the file comes back with safe headers", async () => {
    const o = await newOrg();
    const { c, rec } = open(o, { visitorId: visitorId("upload") });
    await c.connect();
    const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64");

    const info = await c.chatUploadInit();
    expect(info).toEqual({ token: expect.any(String), url: expect.stringMatching(/^http:\/\/.+\/uploads\//), expires_at: expect.any(String), max_bytes: expect.any(Number) });
    const put = await fetch(info.url, { method: "PUT", body: png, headers: { "content-type": "image/png", "x-filename": "dot.png" } });
    expect(put.status, await put.clone().text()).toBe(200);

    const message = await c.chatUploadFinish(info.token);
    expect(rec.received()).toEqual([]); // the caller has it first
    expect(message).toMatchObject({ seq: 1, sender_type: "end_user", content_type: "image", rich_media: { url: expect.stringContaining("/files/"), alt: "dot.png" } });
    expect(message).not.toHaveProperty("duplicate");
    expect((await rec.wait("chat.message_received")).message).toEqual(message);
    if (message.content_type !== "image") throw new Error("not an image message");

    const file = await fetch(message.rich_media.url);
    expect(file.status).toBe(200);
    expect(file.headers.get("content-type")).toBe("image/png");
    expect(file.headers.get("x-content-type-options")).toBe("nosniff");
    expect(Buffer.from(await file.arrayBuffer()).equals(png)).toBe(true);
    // Finishing again is idempotent: the same message, no second delivery.
    expect((await c.chatUploadFinish(info.token)).id).toBe(message.id);
    await sleep(200);
    expect(rec.received()).toEqual([message.id]);
  });
});

describe("what the widget uses (Parley's extensions)", () => {
  it("chatUpload does init, PUT with X-Filename and finish in one call (a Blob or bytes); a type the server refuses rejects with its code", async () => {
    const o = await newOrg();
    const { c, rec } = open(o, { visitorId: visitorId("upload1") });
    await c.connect();
    const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64");

    const image = await c.chatUpload(new Blob([png], { type: "image/png" }), { filename: "red dot ü.png", caption: "the dent" });
    expect(image).toMatchObject({ seq: 1, sender_type: "end_user", content_type: "image", content: "the dent", rich_media: { url: expect.stringContaining("/files/"), alt: "red dot ü.png" } });
    expect((await rec.wait("chat.message_received")).message.id).toBe(image.id);
    const text = await c.chatUpload(new TextEncoder().encode("order 42, the anvil is cracked\n"), { filename: "notes.txt" });
    expect(text).toMatchObject({ seq: 2, content_type: "file", rich_media: { filename: "notes.txt", mime_type: expect.stringContaining("text/plain") } });

    await expect(c.chatUpload(new TextEncoder().encode("<svg onload=alert(1)>"), { filename: "x.svg" })).rejects.toMatchObject({ code: "unsupported_media_type", status: 415 });
    await expect(c.chatUpload(new Uint8Array(0))).rejects.toMatchObject({ code: "validation_failed" });
    await sleep(200);
    expect(rec.received()).toEqual([image.id, text.id]);
  });

  it("queue positions: chat.queue_updated and queueStatus say where each waiting visitor stands; a claim moves the line and clears the claimed visitor's", async () => {
    const o = await newOrg();
    expectStatus(await o.agent.api("/api/routing/queues", { body: { name: "Support" } }), 201, "create a queue");
    const first = open(o, { visitorId: visitorId("q1") });
    const second = open(o, { visitorId: visitorId("q2") });
    const init = await first.c.connect();
    await second.c.connect();

    await first.c.chatMessage(text("I was here first"));
    const one = await first.rec.wait("chat.queue_updated");
    expect(one).toEqual({ position: 1, estimated_wait_s: expect.any(Number), queue: null, open: true, closed_message: null, agents_available: false });
    expect(first.c.queueStatus).toEqual(one);
    await second.c.chatMessage(text("me too"));
    expect(await second.rec.wait("chat.queue_updated")).toMatchObject({ position: 2 });
    expect(second.c.queueStatus!.estimated_wait_s).toBeGreaterThan(one.estimated_wait_s!);

    // The agent claims the first: the second moves up; the first is no longer waiting.
    expectStatus(await o.agent.api(`/api/conversations/${init.conversation.id}/assign`, { body: {} }), 200, "claim");
    expect(await second.rec.wait("chat.queue_updated", (q) => q.position === 1)).toMatchObject({ position: 1 });
    await first.rec.wait("chat.session_updated", (d) => d.session.assigned_agent_id === o.agent.user.id);
    expect(first.c.queueStatus).toBeNull();
    expect(first.c.session).toMatchObject({ status: "open", assigned_agent_id: o.agent.user.id });
  });

  it("identify() before connect goes with it; afterwards it saves at once, and a new name is on the visitor's next message", async () => {
    const o = await newOrg();
    const { c } = open(o, { visitorId: visitorId("who"), name: "Ann" });
    await c.identify({ email: "ann@example.com", attributes: { plan: "pro" } });
    const init = await c.connect();
    expect(c.channel).toEqual({ id: expect.any(String), title: expect.any(String) });
    const conv = () => o.agent.api(`/api/conversations/${init.conversation.id}`).then((r) => expectStatus(r, 200, "conversation").json);
    expect((await conv()).end_user).toMatchObject({ display_name: "Ann", email: "ann@example.com", attributes: { plan: "pro" } });

    await c.identify({ name: "Ann Smith", attributes: { seats: "12" } });
    expect((await conv()).end_user).toMatchObject({ display_name: "Ann Smith", email: "ann@example.com", attributes: { plan: "pro", seats: "12" } });
    await waitFor(() => c.state === "connected", { message: "connected again" });
    expect(await c.chatMessage(text("renamed"))).toMatchObject({ sender_name: "Ann Smith" });
    await expect(c.identify({ email: "not an email" })).rejects.toMatchObject({ code: "validation_failed", status: 400 });
  });

  it("agent read receipts: chat.agent_read and agentReadSeq, which a new connection starts from", async () => {
    const o = await newOrg();
    const vid = visitorId("seen");
    const { c, rec } = open(o, { visitorId: vid });
    const init = await c.connect();
    const mine = await c.chatMessage(text("did you see this?"));
    expect(c.agentReadSeq).toBe(0);
    const agent = await sockets.connect(`/ws/conversations/${init.conversation.id}`, { cookie: o.agent.cookie });
    await agent.nextOfType("ready");
    agent.send({ type: "read", seq: mine.seq });
    expect(await rec.wait("chat.agent_read")).toEqual({ agent_read_seq: mine.seq });
    expect(c.agentReadSeq).toBe(mine.seq);
    expect(rec.of("chat.contact_read")).toEqual([]); // not the visitor's own read

    const later = open(o, { visitorId: vid });
    await later.c.connect();
    expect(later.c.agentReadSeq).toBe(mine.seq);
  });

  it("reconnectNow() skips the backoff wait once the network is back", async () => {
    const o = await newOrg();
    const net = flakyNetwork();
    const { c, rec } = open(o, { visitorId: visitorId("now"), WebSocket: net.WebSocket, reconnect: { minDelayMs: 20_000, maxDelayMs: 30_000 } });
    await c.connect();
    net.drop();
    await waitFor(() => c.state === "reconnecting", { message: "reconnecting" });
    await sleep(300);
    net.offline = false;
    const t0 = Date.now();
    c.reconnectNow();
    await rec.wait("initialized", (d) => d.reconnected, 5_000);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(c.state).toBe("connected");
    c.reconnectNow(); // connected: nothing happens
    await sleep(300);
    expect(rec.of("initialized")).toHaveLength(2);
  });
});

describe("refusals", () => {
  it("connect() rejects with the server's reason; refused sends reject with the server's code", async () => {
    const o = await newOrg();
    const bad = createClient({ host: baseUrl(), key: "pk_not_a_real_key" });
    const err = await bad.connect().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParleyError);
    expect(err).toMatchObject({ code: "unauthorized", status: 401, retryable: false });
    expect(bad.state).toBe("closed");

    const nowhere = createClient({ host: "http://127.0.0.1:9", key: o.pk });
    await expect(nowhere.connect()).rejects.toMatchObject({ code: "network_error", retryable: true });

    // A channel that requires identity verification, without the hash.
    const channel = expectStatus(await o.agent.api("/api/integrations/webchat", { body: { name: "verified", allowed_origins: [], require_identity: true } }), 201, "webchat").json;
    const anonymous = createClient({ host: baseUrl(), embedToken: channel.token, visitorId: visitorId("anon") });
    await expect(anonymous.connect()).rejects.toMatchObject({ code: "identity_required", status: 401 });

    await expect(createClient({ host: baseUrl(), key: o.pk }).chatMessage(text("too early"))).rejects.toMatchObject({ code: "not_connected" });

    const { c, rec } = open(o, { visitorId: visitorId("refused") });
    await c.connect();
    await expect(c.chatMessage(text("bad \uD800 text"))).rejects.toMatchObject({ code: "invalid_text", retryable: false });
    await expect(c.chatMessage(text("x".repeat(16 * 1024 + 1)))).rejects.toMatchObject({ code: "validation_failed" });
    // 20 messages per 10 s: the 21st is refused (retryable), the others are stored.
    const results = await Promise.allSettled(Array.from({ length: 21 }, (_, i) => c.chatMessage(text(`burst ${i}`))));
    const refused = results.filter((r) => r.status === "rejected");
    expect(refused).toHaveLength(1);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({ code: "rate_limited", retryable: true });
    await waitFor(() => rec.received().length === 20, { message: "20 stored messages" });
    expectEachOnce(rec);
    expect(c.state).toBe("connected");
  });
});

describe("the built bundles", () => {
  it("npm run sdk:build's ES module and script-tag (global Parley) builds connect and chat; the typings are emitted", async () => {
    const o = await newOrg();
    const out = mkdtempSync(join(tmpdir(), "parley-sdk-"));
    try {
      const { buildSdk } = await import("../../sdk/build.mjs");
      const files = await buildSdk({ outdir: out });
      const vid = visitorId("bundle");

      const esm = (await import(pathToFileURL(files.esm).href)) as Sdk;
      const a = esm.createClient({ host: baseUrl(), key: o.pk, visitorId: vid });
      clients.push(a);
      await a.connect();
      const m = await a.chatMessage(text("from the ES module"));

      const Parley = new Function(`${readFileSync(files.iife, "utf8")}\nreturn Parley;`)() as Sdk;
      const b = Parley.createClient({ host: baseUrl(), key: o.pk, visitorId: vid });
      clients.push(b);
      const init = await b.connect();
      expect(ids(init.messages)).toEqual([m.id]);

      const types = readFileSync(files.types!, "utf8");
      expect(types).toContain("export declare function createClient(options: ClientOptions): ParleyClient;");
      expect(types).toContain('"chat.message_received": {');
      expect(readFileSync(files.iife, "utf8").length).toBeLessThan(40_000);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe("from browsers", () => {
  it("the webchat session endpoint answers the CORS preflight a page on a customer's site makes before connect()", async () => {
    const res = await api("/chat-widget/session", { method: "OPTIONS", headers: { origin: "https://shop.example", "access-control-request-method": "POST", "access-control-request-headers": "content-type" } });
    expect(res.status).toBeLessThan(300);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://shop.example");
  });

  it("the upload URL answers the preflight of chatUpload's PUT with X-Filename from a customer's site", async () => {
    const res = await api("/uploads/some-conversation/some-token", {
      method: "OPTIONS",
      headers: { origin: "https://shop.example", "access-control-request-method": "PUT", "access-control-request-headers": "content-type,x-filename" },
    });
    expect(res.status).toBeLessThan(300);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://shop.example");
    expect(res.headers.get("access-control-allow-methods")).toContain("PUT");
    expect(res.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("x-filename");
  });
});
