/**
 * The widget inside its iframe (`GET /chat-widget`, built into public/chat-widget/app.js).
 *
 * Reads its own query: `embed_token=ew_…` or `key=pk_…`, and seed 001's `session_id`,
 * `customer_name`, `title`; from the loader also `parent_origin` (the embedding page, for the
 * postMessage bridge) and `launcher=1` (the loader shows and hides the frame). Talks to Parley
 * like any visitor client: POST /chat-widget/session, then the native WebSocket (/ws/visitor)
 * through the shared ConversationClient (resume, resync, outbox).
 *
 * Nothing from the network or the host page reaches innerHTML: every node is built by dom.js.
 */
import { h, messageItem, pendingItem, pendingKey, setChildren, storage, syncList } from "../public/shared/dom.js";
import { ConversationClient, socketUrl, TypingSender, TypingWatcher } from "../public/shared/parley-client.js";

const params = new URLSearchParams(location.search);
const embedToken = params.get("embed_token")?.trim() || null;
const publicKey = embedToken ? null : params.get("key")?.trim() || null;
const credential = embedToken ? { embed_token: embedToken } : { key: publicKey };
const credentialValue = embedToken ?? publicKey ?? "";
const launcherMode = params.get("launcher") === "1";
const identityHash = params.get("identity_hash") || null;
const store = storage();
const sidKey = `cw_sid_${credentialValue}`;
const activeKey = `parley_active_${credentialValue}`;
const emailKey = `parley_email_${credentialValue}`;

/** Who the visitor is: seed 001's params first, then whatever the host page identifies. */
const identity = {
  externalId: params.get("session_id") || store.get(sidKey) || null,
  name: params.get("customer_name")?.trim().slice(0, 200) || null,
  email: null,
  attributes: null,
};

let client = null;
let session = null; // the POST /chat-widget/session answer
let opening = null; // the in-flight openSession() promise
let isOpen = !launcherMode; // a manually framed widget (no loader) is always open
let presence = null; // "online" | "offline" | null (unknown)
let firstHead = null; // head_seq at the first ready: later staff messages are "new"
let announced = 0; // highest seq reported to the host as parley:message
let agentReadSeq = 0; // the highest seq an agent has read (read receipts)
let lastUnread = -1;
let countdown = null;
const listCache = new Map();

// ---- the page ---------------------------------------------------------------------------------

const root = document.getElementById("parley");
const ui = {
  title: h("h1", { id: "pw-title", text: params.get("title")?.trim() || document.title || "Chat with us" }),
  presence: h("p", { class: "pw-presence", hidden: true }),
  close: launcherMode ? h("button", { type: "button", class: "pw-close", "aria-label": "Minimise chat", title: "Minimise", text: "×" }) : null,
  conn: h("p", { class: "conn", role: "status" }),
  welcome: h("p", { class: "pw-welcome", text: "Hi! Ask us anything: we answer right here." }),
  offline: h("form", { class: "pw-offline", hidden: true, "aria-labelledby": "pw-offline-text" }),
  scroll: h("div", { class: "pw-scroll", "data-scroll": "" }),
  list: h("ol", { class: "messages", role: "log", "aria-live": "polite", "aria-label": "Messages" }),
  seen: h("p", { class: "pw-seen", "aria-live": "polite" }),
  typing: h("p", { class: "typing", "aria-live": "polite" }),
  composer: h("form", { class: "pw-composer" }),
  text: h("textarea", { id: "pw-text", rows: 1, placeholder: "Write a message…", maxLength: 16384, autocomplete: "off" }),
  send: h("button", { type: "submit", class: "pw-send", text: "Send" }),
};
ui.scroll.append(ui.welcome, ui.list, ui.seen);
ui.composer.append(h("label", { class: "visually-hidden", htmlFor: "pw-text", text: "Message" }), ui.text, ui.send);
buildOfflineForm();
setChildren(
  root,
  h("header", { class: "pw-head" }, h("div", { class: "pw-head-text" }, ui.title, ui.presence), ui.close),
  ui.conn,
  ui.offline,
  ui.scroll,
  ui.typing,
  ui.composer,
);
document.documentElement.classList.toggle("pw-framed", launcherMode);

const typingOut = new TypingSender((typing) => client?.typing(typing) ?? false);
const typingIn = new TypingWatcher((who) => {
  const names = who.map((w) => w.name || "An agent");
  ui.typing.textContent = names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
});

if (!credentialValue) {
  setConn("This chat is missing its embed token or key.", "bad");
  ui.composer.hidden = true;
} else if (!launcherMode || store.get(activeKey)) {
  // Returning visitors connect at once (live messages, the unread badge); first-time visitors
  // only when they open the chat: a page view alone creates nothing on the server.
  void ensureSession();
}

// ---- the host page bridge (postMessage) -------------------------------------------------------

/**
 * The embedding page's origin: the loader's `parent_origin`, checked against what the browser
 * says framed us (location.ancestorOrigins, where supported). No origin: no bridge at all.
 */
const parentOrigin = (() => {
  if (window.parent === window) return null;
  const named = params.get("parent_origin");
  const actual = location.ancestorOrigins?.[0] ?? null;
  const valid = (o) => {
    try {
      return new URL(o).origin === o && /^https?:$/.test(new URL(o).protocol);
    } catch {
      return false;
    }
  };
  if (named && valid(named)) {
    if (actual && actual !== named) {
      console.warn(`Parley: parent_origin ${named} is not the page that embeds this chat (${actual}): the postMessage bridge is off.`);
      return null;
    }
    return named;
  }
  return actual && valid(actual) ? actual : null;
})();

function toHost(message) {
  // Never "*": a message goes to the embedding origin or nowhere.
  if (parentOrigin) window.parent.postMessage(message, parentOrigin);
}

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
    void ensureSession();
    markRead();
    if (focus) ui.text.focus();
  } else {
    typingOut.stop(true);
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
  const renamed = name && name !== identity.name;
  if (name) identity.name = name;
  if (email && /^[^\s@]+@[^\s@]+$/.test(email)) identity.email = email;
  if (attributes) identity.attributes = { ...(identity.attributes ?? {}), ...attributes };
  // Before the session exists, openSession sends all of it; afterwards, update the profile.
  if (session) {
    void postSession().catch((err) => console.warn(`Parley: could not save the visitor's details (${err.message}).`));
    if (renamed) client?.socket.restart(); // the socket's principal carries the name
  }
}

// ---- the conversation -------------------------------------------------------------------------

function ensureSession() {
  if (session || !credentialValue) return Promise.resolve(session);
  opening ??= openSession().finally(() => {
    opening = null;
  });
  return opening;
}

async function postSession(extra = {}) {
  const body = { ...credential };
  if (identity.externalId) body.session_id = identity.externalId;
  if (identityHash) body.identity_hash = identityHash;
  if (identity.name) body.customer_name = identity.name;
  if (identity.email) body.email = identity.email;
  if (identity.attributes) body.attributes = identity.attributes;
  Object.assign(body, extra);
  const res = await fetch("/chat-widget/session", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const json = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error(json?.error?.message ?? `HTTP ${res.status}`);
    err.status = res.status;
    err.code = json?.error?.code;
    err.retryable = json?.error?.retryable ?? res.status >= 500;
    throw err;
  }
  return json;
}

async function openSession() {
  setConn("Connecting…", "warn");
  try {
    session = await postSession();
  } catch (err) {
    const why =
      err.code === "origin_not_allowed"
        ? "this website is not allowed to show this chat."
        : err.status === 401
          ? "the chat's embed token or key is unknown or revoked."
          : err.message;
    setConn(`The chat could not start: ${why}`, "bad", err.retryable || err.status === undefined ? retryButton(() => void ensureSession()) : null);
    return null;
  }
  identity.externalId = session.external_id;
  store.set(sidKey, session.external_id);
  store.set(activeKey, "1");
  if (!params.get("title") && session.channel?.title) {
    ui.title.textContent = session.channel.title;
    document.title = session.channel.title;
  }
  connect();
  toHost({ type: "parley:ready", conversation: true });
  return session;
}

function connect() {
  client?.stop();
  client = new ConversationClient({
    url: () => {
      const q = new URLSearchParams({ ...credential, external_id: identity.externalId });
      if (identity.name) q.set("name", identity.name);
      if (identityHash) q.set("identity_hash", identityHash);
      return socketUrl(`/ws/visitor?${q}`);
    },
    fetchHistory: async () => {
      const q = new URLSearchParams({ external_id: identity.externalId });
      if (identityHash) q.set("identity_hash", identityHash);
      const res = await fetch(`/chat-widget/history/${encodeURIComponent(session.conversation_id)}?${q}`);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return res.json();
    },
    isSelf: (frame) => frame.sender_type === "end_user",
    onMessages: render,
    onReady: (ready) => {
      firstHead ??= ready.head_seq;
      markRead();
    },
    onTyping: (frame) => typingIn.update(frame),
    onRead: (frame) => {
      if (frame.reader_type !== "end_user" && frame.seq > agentReadSeq) {
        agentReadSeq = frame.seq;
        renderSeen();
      }
    },
    onSession: showSession,
    onPresence: showPresence,
    onState: showState,
    onError: (frame) => setConn(`Error: ${frame.message}`, "bad"),
  });
  client.start();
}

const staff = (m) => m.sender_type === "agent" || m.sender_type === "bot";

function render(sorted, pending) {
  const connected = client?.socket.isOpen ?? false;
  const items = sorted.map((m) => ({
    key: `m:${m.id}`,
    render: () => {
      const mine = m.sender_type === "end_user";
      const who = mine ? "You" : m.sender_type === "system" ? "" : m.sender_name || (m.sender_type === "bot" ? "Bot" : "Support");
      return messageItem(m, { who, mine, onChoose: mine ? null : sendText });
    },
  }));
  for (const p of pending) {
    items.push({ key: pendingKey(p, connected), render: () => pendingItem(p, { connected, onDiscard: (id) => client.discard(id) }) });
  }
  ui.welcome.hidden = items.length > 0;
  syncList(ui.list, listCache, items);
  renderSeen();
  // New staff messages (not history) go to the host page, once each.
  for (const m of sorted) {
    if (firstHead !== null && m.seq > firstHead && m.seq > announced && staff(m)) {
      announced = m.seq;
      toHost({ type: "parley:message", message: { id: m.id, seq: m.seq, sender_type: m.sender_type, sender_name: m.sender_name ?? null, content_type: m.content_type, content: m.content, created_at: m.created_at } });
    }
  }
  markRead();
}

/** "Seen" under the visitor's newest message once an agent has read it. */
function renderSeen() {
  const last = client?.sorted.findLast((m) => m.sender_type === "end_user");
  ui.seen.textContent = last && agentReadSeq >= last.seq && client.pending.size === 0 ? "Seen" : "";
}

function sendText(text) {
  if (!text.trim()) return;
  typingOut.stop(false);
  void ensureSession().then((s) => s && client.send({ content: text }));
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
  typingOut.input(ui.text.value.trim() !== "");
});
ui.text.addEventListener("blur", () => typingOut.stop(true));

function autosize() {
  ui.text.style.height = "auto";
  ui.text.style.height = `${Math.min(ui.text.scrollHeight, 120)}px`;
}

// ---- read receipts and the unread count -------------------------------------------------------

const readKey = () => `parley_read_${session?.conversation_id}`;
let readTimer = null;

/** While the chat is open and visible, everything shown is read: tell the server and the host. */
function markRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    if (!client) return;
    const lastStaff = client.sorted.findLast(staff);
    if (isOpen && document.visibilityState === "visible" && lastStaff) {
      const before = Number(store.get(readKey()) ?? 0);
      if (lastStaff.seq > before) {
        store.set(readKey(), String(lastStaff.seq));
        client.markRead(lastStaff.seq);
      }
    }
    const readSeq = Number(store.get(readKey()) ?? 0);
    const unread = client.sorted.filter((m) => staff(m) && m.seq > readSeq).length;
    if (unread !== lastUnread) {
      lastUnread = unread;
      toHost({ type: "parley:unread", count: unread });
    }
  }, 300);
}
document.addEventListener("visibilitychange", markRead);

// ---- status: connection, presence, session ----------------------------------------------------

function showPresence(status) {
  presence = status;
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
      await ensureSession();
      if (!session) throw new Error("the chat is not connected");
      await postSession(); // stores the email on the end user
      // Agents' conversation view does not show end users' emails yet: say it in the thread too.
      client.send({ content: `My email for a reply: ${value}` });
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
}

function showState(state, info) {
  clearInterval(countdown);
  if (client) render(client.sorted, [...client.pending.values()]);
  switch (state) {
    case "connecting":
      setConn(info?.attempt ? "Reconnecting…" : "Connecting…", "warn");
      break;
    case "open":
      setConn("", "");
      break;
    case "waiting": {
      typingIn.clear();
      const tick = () => {
        const s = Math.round((info.at - Date.now()) / 1000);
        setConn(s >= 1 ? `Reconnecting in ${s} s…` : "Reconnecting…", "warn", retryButton(() => client?.retryNow()));
      };
      tick();
      countdown = setInterval(tick, 1000);
      break;
    }
    case "failed":
      setConn(`The chat server refused the connection (${info?.reason || info?.code}).`, "bad", retryButton(() => client?.retryNow()));
      break;
  }
  root.classList.toggle("pw-offline-conn", state === "waiting" || state === "failed");
}

function setConn(text, level, ...extra) {
  ui.conn.className = `conn ${level}`;
  ui.conn.hidden = !text;
  setChildren(ui.conn, text, ...extra.filter(Boolean).map((e) => [" ", e]));
}

function retryButton(onclick) {
  return h("button", { type: "button", class: "link-button", text: "Retry now", onclick });
}
