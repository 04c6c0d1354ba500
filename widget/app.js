/**
 * The widget inside its iframe (`GET /chat-widget`, built into public/chat-widget/app.js).
 *
 * Reads its own query: `embed_token=ew_…` or `key=pk_…`, and seed 001's `session_id`,
 * `customer_name`, `title`; from the loader also `parent_origin` (the embedding page, for the
 * postMessage bridge) and `launcher=1` (the loader shows and hides the frame). Talks to Parley
 * through the Web SDK (sdk/src/index.ts, bundled in): one visitor client for the widget and for
 * customers' own code (connect, resume, resync, the send outbox, uploads, typing, read positions,
 * the queue). What is here is the view.
 *
 * Nothing from the network or the host page reaches innerHTML: every node is built by dom.js.
 */
import { createClient } from "../sdk/src/index.ts";
import { h, messageItem, pendingItem, pendingKey, setChildren, storage, syncList } from "../public/shared/dom.js";

const params = new URLSearchParams(location.search);
const embedToken = params.get("embed_token")?.trim() || null;
const publicKey = embedToken ? null : params.get("key")?.trim() || null;
const credentialValue = embedToken ?? publicKey ?? "";
const launcherMode = params.get("launcher") === "1";
const identityHash = params.get("identity_hash") || null;
const store = storage();
const sidKey = `cw_sid_${credentialValue}`;
const activeKey = `parley_active_${credentialValue}`;
const emailKey = `parley_email_${credentialValue}`;
/** The upload formats the server accepts (typed from the bytes there; this only guides the picker). */
const ACCEPT = "image/png,image/jpeg,image/gif,image/webp,application/pdf,application/zip,text/plain,.pdf,.zip,.txt";

/** Who the visitor is: seed 001's params first, then whatever the host page identifies. */
const identity = {
  externalId: params.get("session_id") || store.get(sidKey) || null,
  name: params.get("customer_name")?.trim().slice(0, 200) || null,
  email: null,
  // The host page's URL (from the loader), shown to agents beside the conversation.
  attributes: /^https?:\/\//i.test(params.get("page_url") ?? "") ? { page_url: params.get("page_url").slice(0, 1000) } : null,
};

/** @type {import("../sdk/src/index.ts").ParleyClient | null} */
let client = null;
let isOpen = !launcherMode; // a manually framed widget (no loader) is always open
let lastUnread = -1;
/** The conversation as shown: id -> message (from `initialized`, events and resolved calls). */
let byId = new Map();
/** Sends and uploads not stored yet: local id -> { client_msg_id, content, content_type, rich_media, error, note, status }. */
const pending = new Map();
let localIds = 0;
const listCache = new Map();

// ---- the page ---------------------------------------------------------------------------------

const root = document.getElementById("parley");
const ui = {
  title: h("h1", { id: "pw-title", text: params.get("title")?.trim() || document.title || "Chat with us" }),
  presence: h("p", { class: "pw-presence", hidden: true }),
  close: launcherMode ? h("button", { type: "button", class: "pw-close", "aria-label": "Minimise chat", title: "Minimise", text: "×" }) : null,
  conn: h("p", { class: "conn", role: "status" }),
  queue: h("p", { class: "pw-queue", role: "status", hidden: true }),
  welcome: h("p", { class: "pw-welcome", text: "Hi! Ask us anything: we answer right here." }),
  offline: h("form", { class: "pw-offline", hidden: true, "aria-labelledby": "pw-offline-text" }),
  scroll: h("div", { class: "pw-scroll", "data-scroll": "" }),
  list: h("ol", { class: "messages", role: "log", "aria-live": "polite", "aria-label": "Messages" }),
  seen: h("p", { class: "pw-seen", "aria-live": "polite" }),
  typing: h("p", { class: "typing", "aria-live": "polite" }),
  preview: h("p", { class: "pw-preview", id: "pw-preview", hidden: true, text: "Our team sees what you type here before you send it." }),
  composer: h("form", { class: "pw-composer" }),
  file: h("input", { type: "file", id: "pw-file", class: "visually-hidden", accept: ACCEPT, multiple: true, tabIndex: -1, "aria-hidden": "true" }),
  attach: h("button", { type: "button", class: "pw-attach", "aria-label": "Attach a file or image", title: "Attach a file or image" }, clipIcon()),
  text: h("textarea", { id: "pw-text", rows: 1, placeholder: "Write a message…", maxLength: 16384, autocomplete: "off" }),
  send: h("button", { type: "submit", class: "pw-send", text: "Send" }),
};
ui.scroll.append(ui.welcome, ui.list, ui.seen);
ui.composer.append(ui.file, ui.attach, h("label", { class: "visually-hidden", htmlFor: "pw-text", text: "Message" }), ui.text, ui.send);
buildOfflineForm();
setChildren(
  root,
  h("header", { class: "pw-head" }, h("div", { class: "pw-head-text" }, ui.title, ui.presence), ui.close),
  ui.conn,
  ui.queue,
  ui.offline,
  ui.scroll,
  ui.typing,
  ui.preview,
  ui.composer,
);
document.documentElement.classList.toggle("pw-framed", launcherMode);

/** A paperclip (SVG needs its namespace: h() makes HTML elements). */
function clipIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9v9a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10z");
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  return svg;
}

if (!credentialValue) {
  setConn("This chat is missing its embed token or key.", "bad");
  ui.composer.hidden = true;
} else if (!launcherMode || store.get(activeKey)) {
  // Returning visitors connect at once (live messages, the unread badge); first-time visitors
  // only when they open the chat: a page view alone creates nothing on the server.
  ensureClient();
}

// ---- the host page bridge (postMessage) -------------------------------------------------------

/**
 * The embedding page's origin (RELIABILITY S16): the loader's `parent_origin`, which the server
 * only serves this page with when it is one of the channel's allowed origins (or any origin when
 * the channel lists none), and which must be what the browser says framed us
 * (location.ancestorOrigins, where supported). No `parent_origin`, or a mismatch: no bridge at
 * all (a hand-built iframe is always open and talks to nobody).
 */
const parentOrigin = (() => {
  if (window.parent === window) return null;
  const named = params.get("parent_origin");
  const actual = location.ancestorOrigins?.[0] ?? null;
  let valid = false;
  try {
    valid = named !== null && new URL(named).origin === named && /^https?:$/.test(new URL(named).protocol);
  } catch {
    // not a URL: no bridge
  }
  if (!valid) return null;
  if (actual !== null && actual !== named) {
    console.warn(`Parley: parent_origin ${named} is not the page that embeds this chat (${actual}): the postMessage bridge is off.`);
    return null;
  }
  return named;
})();

function toHost(message) {
  // Never "*": a message goes to the embedding origin or nowhere.
  if (parentOrigin) window.parent.postMessage(message, parentOrigin);
}

// Commands come only from the parent window at exactly that origin: not from sibling frames, popups
// or openers, not from another origin. Anything else is ignored without an answer.
window.addEventListener("message", (event) => {
  if (!parentOrigin || event.origin !== parentOrigin || event.source !== window.parent) return;
  const data = event.data;
  if (!data || typeof data !== "object" || typeof data.type !== "string") return;
  switch (data.type) {
    case "parley:open":
      setOpen(true, data.focus !== false);
      return;
    case "parley:close":
      setOpen(false);
      return;
    case "parley:identify":
      identify(data);
      return;
  }
});

toHost({ type: "parley:ready", conversation: false });

function setOpen(open, focus = true) {
  if (!launcherMode) return;
  if (open !== isOpen) {
    isOpen = open;
    toHost({ type: open ? "parley:opened" : "parley:closed" });
  }
  if (open) {
    ensureClient();
    markRead();
    if (focus) ui.text.focus();
  } else {
    typingStop(true);
  }
}

ui.close?.addEventListener("click", () => setOpen(false));
// The loader focuses the frame when it shows it: pass that on to the composer.
window.addEventListener("focus", () => {
  if (isOpen && document.activeElement === document.body) ui.text.focus();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && launcherMode && isOpen) {
    event.preventDefault();
    setOpen(false);
  }
});

/** `{type:"parley:identify", name, email, attributes}` from the host page. */
function identify(data) {
  const text = (v, max) => (typeof v === "string" && v.trim() && v.length <= max ? v.trim() : null);
  const name = text(data.name, 200);
  const email = text(data.email, 254);
  let attributes = null;
  if (data.attributes && typeof data.attributes === "object" && !Array.isArray(data.attributes)) {
    attributes = {};
    for (const [k, v] of Object.entries(data.attributes).slice(0, 50)) {
      if (k.length <= 100 && ["string", "number", "boolean"].includes(typeof v)) attributes[k] = String(v).slice(0, 1000);
    }
  }
  const profile = {};
  if (name) profile.name = identity.name = name;
  if (email && /^[^\s@]+@[^\s@]+$/.test(email)) profile.email = identity.email = email;
  if (attributes) profile.attributes = identity.attributes = { ...(identity.attributes ?? {}), ...attributes };
  // Before the client exists it starts with all of it (ensureClient); afterwards the SDK saves it.
  client?.identify(profile).catch((err) => console.warn(`Parley: could not save the visitor's details (${err.message}).`));
}

// ---- the conversation -------------------------------------------------------------------------

/** The SDK client, made on first need; (re)connects it unless it is connecting or connected. */
function ensureClient() {
  if (!credentialValue) return null;
  if (!client) {
    client = createClient({
      host: location.origin,
      ...(embedToken ? { embedToken } : { key: publicKey }),
      visitorId: identity.externalId ?? undefined,
      name: identity.name ?? undefined,
      identityHash: identityHash ?? undefined,
    });
    if (identity.email || identity.attributes) void client.identify({ email: identity.email ?? undefined, attributes: identity.attributes ?? undefined });
    listen(client);
  }
  if (client.state === "idle" || client.state === "closed") void start(client);
  return client;
}

async function start(c) {
  setConn("Connecting…", "warn");
  try {
    await c.connect();
  } catch (err) {
    const why =
      err.code === "origin_not_allowed"
        ? "this website is not allowed to show this chat."
        : err.status === 401
          ? "the chat's embed token or key is unknown or revoked."
          : err.message;
    setConn(`The chat could not start: ${why}`, "bad", err.retryable || err.status === null ? retryButton(() => ensureClient()) : null);
    return;
  }
  identity.externalId = c.visitorId;
  store.set(sidKey, c.visitorId);
  store.set(activeKey, "1");
  toHost({ type: "parley:ready", conversation: true });
}

const staff = (m) => m.sender_type === "agent" || m.sender_type === "bot";

/** @param {import("../sdk/src/index.ts").ParleyClient} c */
function listen(c) {
  c.on("initialized", (data) => {
    // Fresh data after every (re)connect: the view starts over from it.
    byId = new Map(data.messages.map((m) => [m.id, m]));
    const title = c.channel?.title;
    if (!params.get("title") && title) {
      ui.title.textContent = title;
      document.title = title;
    }
    showPresence(data.account.status);
    showSession(data.conversation.session);
    typingPreview = data.typing_preview;
    ui.preview.hidden = !typingPreview;
    if (typingPreview) ui.text.setAttribute("aria-describedby", "pw-preview");
    else ui.text.removeAttribute("aria-describedby");
    render();
  });
  c.on("chat.message_received", ({ message: m }) => {
    if (byId.has(m.id)) return; // the call that stored it put it here already
    byId.set(m.id, m);
    render();
    // New staff messages go to the host page, once each (the SDK never repeats an id).
    if (staff(m)) {
      toHost({ type: "parley:message", message: { id: m.id, seq: m.seq, sender_type: m.sender_type, sender_name: m.sender_name ?? null, content_type: m.content_type, content: m.content, created_at: m.created_at } });
    }
  });
  c.on("account.status_updated", showPresence);
  c.on("chat.session_updated", ({ session }) => showSession(session));
  c.on("chat.queue_updated", showQueue);
  c.on("chat.agent_typing", agentTyping);
  c.on("chat.agent_read", renderSeen);
  c.on("chat.contact_read", markRead);
  c.on("connection.state_changed", ({ state }) => showState(state));
  c.on("error", (err) => {
    if (c.state === "closed") setConn(`The chat server refused the connection (${err.message}).`, "bad", retryButton(() => ensureClient()));
    else setConn(`Error: ${err.message}`, "bad");
  });
}

function render() {
  const connected = client?.state === "connected";
  const items = [...byId.values()]
    .sort((a, b) => a.seq - b.seq)
    .map((m) => ({
      key: `m:${m.id}`,
      render: () => {
        const mine = m.sender_type === "end_user";
        const who = mine ? "You" : m.sender_type === "system" ? "" : m.sender_name || (m.sender_type === "bot" ? "Bot" : "Support");
        return messageItem(m, { who, mine, onChoose: mine ? null : sendText });
      },
    }));
  for (const p of pending.values()) {
    items.push({ key: pendingKey(p, connected), render: () => pendingItem(p, { connected, onDiscard: discard }) });
  }
  ui.welcome.hidden = items.length > 0;
  syncList(ui.list, listCache, items);
  renderSeen();
  markRead();
}

/** "Seen" under the visitor's newest message once an agent has read it. */
function renderSeen() {
  const last = [...byId.values()].filter((m) => m.sender_type === "end_user").sort((a, b) => b.seq - a.seq)[0];
  ui.seen.textContent = last && client && client.agentReadSeq >= last.seq && pending.size === 0 ? "Seen" : "";
}

function discard(id) {
  pending.delete(id);
  render();
}

/** Shows an outbox entry until `call` resolves to the stored message (or fails: then it says why). */
function track(item, call) {
  pending.set(item.client_msg_id, item);
  render();
  call().then(
    (m) => {
      pending.delete(item.client_msg_id);
      byId.set(m.id, m);
      render();
    },
    (err) => {
      if (!pending.has(item.client_msg_id)) return;
      if (err.code === "rate_limited") {
        // Nothing was stored: try again shortly.
        item.note = err.message;
        item.status = null;
        render();
        setTimeout(() => pending.has(item.client_msg_id) && track(item, call), 3_000);
        return;
      }
      item.error = `${err.code}: ${err.message}`;
      render();
    },
  );
}

function sendText(text) {
  if (!text.trim()) return;
  typingStop(false);
  const c = ensureClient();
  if (!c) return;
  const item = { client_msg_id: `local-${++localIds}`, content: text, content_type: "text", rich_media: null, error: null };
  track(item, () => c.chatMessage({ content: { type: "text", text } }));
}

function sendFiles(files) {
  const c = ensureClient();
  if (!c) return;
  for (const file of [...files].slice(0, 10)) {
    const item = { client_msg_id: `local-${++localIds}`, content: file.name || "file", content_type: "text", rich_media: null, error: null, status: "Uploading…" };
    track(item, () => c.chatUpload(file, { filename: file.name || "file" }));
  }
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.text.value;
  if (!text.trim()) return;
  sendText(text);
  ui.text.value = "";
  autosize();
  ui.text.focus();
});
ui.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});
ui.text.addEventListener("input", () => {
  autosize();
  typingInput(ui.text.value);
});
ui.text.addEventListener("blur", () => typingStop(true));
ui.attach.addEventListener("click", () => ui.file.click());
ui.file.addEventListener("change", () => {
  if (ui.file.files?.length) sendFiles(ui.file.files);
  ui.file.value = "";
  ui.text.focus();
});
// A pasted screenshot, or files dropped on the chat.
ui.text.addEventListener("paste", (event) => {
  const files = event.clipboardData?.files;
  if (files?.length) {
    event.preventDefault();
    sendFiles(files);
  }
});
root.addEventListener("dragover", (event) => {
  if (event.dataTransfer?.types.includes("Files")) event.preventDefault();
});
root.addEventListener("drop", (event) => {
  if (!event.dataTransfer?.files.length) return;
  event.preventDefault();
  sendFiles(event.dataTransfer.files);
});

function autosize() {
  ui.text.style.height = "auto";
  ui.text.style.height = `${Math.min(ui.text.scrollHeight, 120)}px`;
}

// ---- typing, both ways ------------------------------------------------------------------------

let typingIdle = null;
/** The channel shows agents the draft as typed (said under the composer while it is on). */
let typingPreview = false;
/**
 * On every keystroke: the SDK sends typing:true at most every 3 s (with the typing preview, the
 * draft at most every 300 ms); 4 s of quiet ends it.
 */
function typingInput(text) {
  clearTimeout(typingIdle);
  if (!client) return;
  if (typingPreview) client.chatDraft(text);
  if (text.trim() === "") return void client.chatTyping(false);
  client.chatTyping(true);
  typingIdle = setTimeout(() => client?.chatTyping(false), 4_000);
}

/** notify: send typing:false (not needed after a send: the server clears it). */
function typingStop(notify) {
  clearTimeout(typingIdle);
  if (notify) client?.chatTyping(false);
}

/** Who is typing, each expiring 7 s after their last frame (a lost typing:false must not linger). */
const typers = new Map();
function agentTyping({ typing, agent }) {
  const key = `${agent.type}:${agent.id}`;
  clearTimeout(typers.get(key)?.timer);
  if (typing) typers.set(key, { name: agent.name, timer: setTimeout(() => agentTyping({ typing: false, agent }), 7_000) });
  else typers.delete(key);
  const names = [...typers.values()].map((t) => t.name || "An agent");
  ui.typing.textContent = names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

function clearTyping() {
  for (const t of typers.values()) clearTimeout(t.timer);
  typers.clear();
  ui.typing.textContent = "";
}

// ---- read receipts and the unread count -------------------------------------------------------

let readTimer = null;

/** While the chat is open and visible, everything shown is read: tell the server and the host. */
function markRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    if (!client) return;
    if (isOpen && document.visibilityState === "visible" && client.unreadCount > 0) client.chatRead();
    // The SDK's count follows the server's read position (every tab of this visitor shares it).
    const unread = client.unreadCount;
    if (unread !== lastUnread) {
      lastUnread = unread;
      toHost({ type: "parley:unread", count: unread });
    }
  }, 300);
}
document.addEventListener("visibilitychange", markRead);

// ---- status: connection, presence, session, queue ---------------------------------------------

function showPresence(status) {
  ui.presence.hidden = false;
  ui.presence.className = `pw-presence ${status === "online" ? "online" : "offline"}`;
  ui.presence.textContent = status === "online" ? "We're online" : "We're away";
  ui.offline.hidden = status === "online" || Boolean(store.get(emailKey));
}

function buildOfflineForm() {
  const email = h("input", { id: "pw-email", type: "email", autocomplete: "email", required: true, maxLength: 254, placeholder: "you@example.com" });
  const note = h("p", { class: "pw-offline-note", role: "status" });
  ui.offline.append(
    h("p", { id: "pw-offline-text", text: "We're away right now. Leave your email and we'll get back to you, here and by email." }),
    h("div", { class: "pw-offline-row" }, h("label", { class: "visually-hidden", htmlFor: "pw-email", text: "Your email" }), email, h("button", { type: "submit", text: "Save" })),
    note,
  );
  ui.offline.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = email.value.trim();
    if (!email.checkValidity() || !value) return email.focus();
    identity.email = value;
    note.textContent = "Saving…";
    try {
      const c = ensureClient();
      await c.identify({ email: value }); // stores the email on the end user
      if (!c.conversationId) throw new Error("the chat is not connected");
      // Say it in the thread too, so whoever answers sees it at once.
      sendText(`My email for a reply: ${value}`);
      store.set(emailKey, value);
      ui.offline.hidden = true;
      ui.text.focus();
    } catch (err) {
      note.textContent = `Could not save your email: ${err.message}`;
    }
  });
}

function showSession(s) {
  ui.composer.classList.toggle("resolved", s?.status === "resolved");
  ui.text.placeholder = s?.status === "resolved" ? "Conversation resolved. Write to start a new one…" : "Write a message…";
  showQueue();
}

/** "You are number N in line (about M min)" while the visitor waits for an agent. */
function showQueue() {
  const q = client?.queueStatus;
  const s = client?.session;
  const waiting = q && q.position && s?.status === "open" && !s.assigned_agent_id;
  let text = "";
  if (waiting) {
    text = `You are number ${q.position} in line`;
    if (q.estimated_wait_s) text += ` (about ${Math.max(1, Math.round(q.estimated_wait_s / 60))} min)`;
  }
  ui.queue.textContent = text;
  ui.queue.hidden = !text;
}

function showState(state) {
  render();
  switch (state) {
    case "connecting":
      setConn("Connecting…", "warn");
      break;
    case "connected":
      setConn("", "");
      break;
    case "reconnecting":
      clearTyping();
      setConn("Reconnecting…", "warn", retryButton(() => client?.reconnectNow()));
      break;
    // "closed": the reason comes with connect()'s rejection or the error event.
  }
  root.classList.toggle("pw-offline-conn", state === "reconnecting" || state === "closed");
}

function setConn(text, level, ...extra) {
  ui.conn.className = `conn ${level}`;
  ui.conn.hidden = !text;
  setChildren(ui.conn, text, ...extra.filter(Boolean).map((e) => [" ", e]));
}

function retryButton(onclick) {
  return h("button", { type: "button", class: "link-button", text: "Retry now", onclick });
}
