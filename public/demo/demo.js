/**
 * The demo host page's chat panel: a website visitor's side of Parley.
 *
 * Public key from ?key=pk_…; the visitor's external id in localStorage (parley_visitor_<key>);
 * history and live messages over /ws/visitor (resume with since/epoch, REST resync when asked);
 * sends carry a client_msg_id and are resent with it after a reconnect until acknowledged.
 */
import { h, messageItem, pendingItem, pendingKey, setChildren, storage, syncList } from "/shared/dom.js";
import { ConversationClient, socketUrl, TypingSender, TypingWatcher } from "/shared/parley-client.js";

const $ = (id) => document.getElementById(id);
const ui = {
  title: $("chat-title"),
  toggle: $("chat-toggle"),
  body: $("chat-body"),
  presence: $("presence"),
  conn: $("conn"),
  notice: $("notice"),
  startForm: $("start-form"),
  name: $("visitor-name"),
  conversation: $("conversation"),
  messages: $("messages"),
  typing: $("typing"),
  composer: $("composer"),
  text: $("composer-text"),
  forget: $("forget"),
};

const store = storage();
const key = new URLSearchParams(location.search).get("key")?.trim() ?? "";
const idKey = `parley_visitor_${key}`;
const nameKey = `parley_visitor_name_${key}`;

let client = null;
let conversationId = null;
let externalId = null;
let visitorName = null;
let countdown = null;
const listCache = new Map();
const typingOut = new TypingSender((typing) => client?.typing(typing) ?? false);
const typingIn = new TypingWatcher(showTyping);

ui.toggle.addEventListener("click", () => {
  const open = ui.body.hidden;
  ui.body.hidden = !open;
  ui.toggle.setAttribute("aria-expanded", String(open));
  ui.toggle.textContent = open ? "Minimise" : "Open chat";
  if (open) markRead();
});

if (!/^pk_[\w-]+$/.test(key)) {
  showNotice(
    "This demo page needs a public key in its address. Start Parley with ",
    h("code", { text: "npm start" }),
    " and open the demo URL it prints (it ends in ",
    h("code", { text: "?key=pk_…" }),
    ").",
  );
} else {
  if (!store.persistent) showNotice("Your browser blocks local storage: this chat will be forgotten when you leave the page.");
  externalId = store.get(idKey);
  visitorName = store.get(nameKey);
  if (externalId) void openSession();
  else ui.startForm.hidden = false;
}

ui.startForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.name.value.trim();
  visitorName = name || null;
  if (visitorName) store.set(nameKey, visitorName);
  ui.startForm.hidden = true;
  void openSession();
});

ui.forget.addEventListener("click", () => {
  client?.stop();
  client = null;
  store.remove(idKey);
  store.remove(nameKey);
  externalId = visitorName = conversationId = null;
  listCache.clear();
  ui.messages.replaceChildren();
  typingIn.clear();
  ui.conversation.hidden = true;
  ui.presence.hidden = true;
  setConn("", "");
  ui.name.value = "";
  ui.startForm.hidden = false;
  ui.name.focus();
});

/** POST /chat-widget/session: first visit without session_id (the server makes the id), later with it. */
async function openSession() {
  setConn("Connecting…", "");
  const body = { key };
  if (externalId) body.session_id = externalId;
  if (visitorName) body.customer_name = visitorName;
  let res;
  try {
    res = await postJson("/chat-widget/session", body);
  } catch (err) {
    setConn(`Could not reach the chat server (${err.message}).`, "bad", retryButton(() => openSession()));
    return;
  }
  if (!res.ok) {
    const msg = res.status === 401 ? "This public key is unknown or revoked." : res.error;
    setConn(`The chat could not start: ${msg}`, "bad", res.retryable ? retryButton(() => openSession()) : null);
    if (!externalId) ui.startForm.hidden = false;
    return;
  }
  const session = res.json;
  externalId = session.external_id;
  conversationId = session.conversation_id;
  store.set(idKey, externalId);
  if (session.channel?.title) ui.title.textContent = session.channel.title;
  ui.conversation.hidden = false;
  connect();
}

function connect() {
  client?.stop();
  client = new ConversationClient({
    url: () => {
      const q = new URLSearchParams({ key, external_id: externalId });
      if (visitorName) q.set("name", visitorName);
      return socketUrl(`/ws/visitor?${q}`);
    },
    fetchHistory: async () => {
      const res = await fetch(`/chat-widget/history/${encodeURIComponent(conversationId)}?${new URLSearchParams({ external_id: externalId })}`);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return res.json();
    },
    isSelf: (frame) => frame.sender_type === "end_user",
    onMessages: render,
    onReady: (ready) => {
      conversationId = ready.conversation_id;
      markRead();
    },
    onTyping: (frame) => typingIn.update(frame),
    onSession: showSession,
    onPresence: showPresence,
    onState: showState,
    onError: (frame) => setConn(`Error: ${frame.message}`, "bad"),
  });
  client.start();
}

function render(sorted, pending) {
  const connected = client?.socket.isOpen ?? false;
  const items = sorted.map((m) => ({
    key: `m:${m.id}`,
    render: () => {
      const mine = m.sender_type === "end_user";
      const who = mine ? "You" : m.sender_type === "system" ? "" : (m.sender_name ?? (m.sender_type === "bot" ? "Bot" : "Agent"));
      return messageItem(m, { who, mine, onChoose: mine ? null : sendText });
    },
  }));
  for (const p of pending) {
    items.push({ key: pendingKey(p, connected), render: () => pendingItem(p, { connected, onDiscard: (id) => client.discard(id) }) });
  }
  if (items.length === 0) items.push({ key: "empty", render: () => h("li", { class: "empty", text: "No messages yet. Say hello!" }) });
  syncList(ui.messages, listCache, items);
  if (sorted.length > 0) markRead();
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.text.value;
  if (!text.trim() || !client) return;
  sendText(text);
  ui.text.value = "";
  ui.text.focus();
});

ui.text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.text.addEventListener("input", () => typingOut.input(ui.text.value.trim() !== ""));
ui.text.addEventListener("blur", () => typingOut.stop(true));

function sendText(text) {
  if (!client) return;
  typingOut.stop(false);
  client.send({ content: text });
}

let readTimer = null;
/** Read receipt up to the newest message, when the visitor can actually see the panel. */
function markRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    if (!client || document.visibilityState !== "visible" || ui.body.hidden) return;
    const last = client.sorted.at(-1);
    if (last && last.sender_type !== "end_user") client.markRead(last.seq);
  }, 500);
}
document.addEventListener("visibilitychange", markRead);

function showTyping(who) {
  const names = who.map((w) => w.name ?? "An agent");
  ui.typing.textContent = names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

function showPresence(status) {
  ui.presence.hidden = false;
  ui.presence.className = `presence ${status === "online" ? "online" : "offline"}`;
  ui.presence.textContent = status === "online" ? "An agent is online." : "No agent is online right now: leave a message and we will answer here.";
}

function showSession(session) {
  const resolved = session?.status === "resolved";
  const note = $("resolved-note");
  if (resolved && !note) {
    ui.typing.after(h("p", { id: "resolved-note", class: "conn", text: "This conversation was marked resolved. Write again and an agent will pick it up." }));
  } else if (!resolved && note) note.remove();
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
      ui.presence.hidden = true; // unknown until we are back
      const tick = () => {
        const s = Math.round((info.at - Date.now()) / 1000);
        setConn(s >= 1 ? `Connection lost. Reconnecting in ${s} s…` : "Connection lost. Reconnecting…", "warn", retryButton(() => client?.retryNow()));
      };
      tick();
      countdown = setInterval(tick, 1000);
      typingIn.clear();
      break;
    }
    case "failed":
      ui.presence.hidden = true;
      setConn(`The chat server refused the connection (${info?.reason || info?.code}).`, "bad", retryButton(() => client?.retryNow()));
      break;
    case "stopped":
      break;
  }
}

function setConn(text, level, ...extra) {
  ui.conn.className = `conn ${level}`;
  setChildren(ui.conn, text, ...extra.filter(Boolean).map((e) => [" ", e]));
}

function retryButton(onclick) {
  return h("button", { type: "button", class: "link-button", text: "Retry now", onclick });
}

function showNotice(...parts) {
  ui.notice.hidden = false;
  ui.notice.append(h("p", {}, ...parts));
}

/** POST JSON; resolves { ok, status, json, error, retryable }, rejects only on network failure. */
async function postJson(path, body) {
  const res = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const json = await res.json().catch(() => null);
  return { ok: res.ok, status: res.status, json, error: json?.error?.message ?? `HTTP ${res.status}`, retryable: json?.error?.retryable ?? res.status >= 500 };
}
