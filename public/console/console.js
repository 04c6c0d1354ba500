/**
 * The agent console: log in, the inbox (unassigned / mine / all; REST lists refreshed live from
 * /ws/org events), one conversation at a time over /ws/conversations/:id (resume, resync), claim,
 * reply (text or quick buttons), typing both ways, resolve with tags, log out; the team's presence,
 * the visitor's details beside the conversation, a sound and a desktop notification when a
 * conversation arrives in the unassigned inbox (mutable), and for owners and admins the settings
 * screens (admin.js).
 *
 * The session is an HttpOnly cookie; the CSRF token lives in memory only and goes with every
 * POST as X-CSRFToken.
 */
import { formatTime, h, messageItem, pendingItem, pendingKey, setChildren, storage, syncList } from "/shared/dom.js";
import { ConversationClient, ReconnectingSocket, socketUrl, TypingSender, TypingWatcher } from "/console/agent-client.js";
import { createSettings } from "/console/admin.js";

const $ = (id) => document.getElementById(id);
const ui = {
  boot: $("boot"),
  whoami: $("whoami"),
  orgConn: $("org-conn"),
  logout: $("logout"),
  mainNav: $("main-nav"),
  navInbox: $("nav-inbox"),
  navSettings: $("nav-settings"),
  alerts: $("alerts"),
  desktopAlerts: null,
  settings: $("settings"),
  teamList: $("team-list"),
  details: $("details"),
  detailsStatus: $("details-status"),
  detailsList: $("details-list"),
  detailsAttrsTitle: $("details-attrs-title"),
  detailsAttrs: $("details-attrs"),
  login: $("login"),
  loginForm: $("login-form"),
  email: $("login-email"),
  password: $("login-password"),
  loginError: $("login-error"),
  app: $("app"),
  tabs: [...document.querySelectorAll('[role="tab"]')],
  panel: $("inbox-panel"),
  inboxStatus: $("inbox-status"),
  inbox: $("inbox-list"),
  viewEmpty: $("view-empty"),
  viewBody: $("view-body"),
  viewTitle: $("view-title"),
  viewSession: $("view-session"),
  claim: $("claim"),
  transferForm: $("transfer-form"),
  transferTo: $("transfer-to"),
  transfer: $("transfer"),
  unassign: $("unassign"),
  resolveForm: $("resolve-form"),
  tags: $("resolve-tags"),
  resolve: $("resolve"),
  viewConn: $("view-conn"),
  viewError: $("view-error"),
  messages: $("view-messages"),
  typing: $("view-typing"),
  draft: $("view-draft"),
  replyForm: $("reply-form"),
  reply: $("reply-text"),
  quick: $("reply-quick"),
  private: $("reply-private"),
  buttons: $("reply-buttons"),
  choicesAs: $("reply-choices-as"),
  cards: $("reply-cards"),
  cardsEditor: $("reply-cards-editor"),
  cardsText: $("reply-cards-text"),
  uploadFile: $("upload-file"),
  uploadStatus: $("upload-status"),
};

/** Logged-in state; null when logged out. */
let me = null;
let csrf = null;
let filter = "unassigned";
let conversations = [];
let orgSocket = null;
let onlineAgents = new Set();
const agentNames = new Map();
let team = []; // teammates from GET /api/company/agents (every agent may list them)
const previews = new Map(); // conversation id -> last content seen in a live event
const unread = new Set();
let current = null; // { id, conv, client, session }
const listCache = new Map();
const typingIn = new TypingWatcher(showTyping);
const typingOut = new TypingSender((typing) => current?.client.typing(typing) ?? false);

class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Same-origin JSON call; POSTs carry the CSRF token. Throws HttpError. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRFToken"] = csrf ?? "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  } catch (err) {
    throw new HttpError(0, "network", `could not reach the server (${err.message})`);
  }
  const json = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new HttpError(res.status, json?.error?.code ?? "http", json?.error?.message ?? `HTTP ${res.status}`);
    if (res.status === 401 && me && path !== "/auth/login") sessionEnded();
    throw err;
  }
  return json;
}

// ---- login / logout ---------------------------------------------------------------------------

async function boot() {
  try {
    enter(await api("GET", "/auth/me"));
  } catch (err) {
    showLogin(err.status === 401 ? "" : `Could not check your session: ${err.message}`);
  }
}

function showLogin(message) {
  ui.boot.hidden = true;
  ui.app.hidden = true;
  ui.logout.hidden = true;
  ui.login.hidden = false;
  ui.whoami.textContent = "";
  ui.orgConn.textContent = "";
  ui.loginError.textContent = message;
  ui.email.focus();
}

ui.loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  ui.loginError.textContent = "";
  const button = ui.loginForm.querySelector("button");
  button.disabled = true;
  try {
    const res = await api("POST", "/auth/login", { email: ui.email.value, password: ui.password.value });
    ui.password.value = "";
    enter(res);
  } catch (err) {
    ui.password.value = "";
    ui.loginError.textContent = err.code === "invalid_credentials" ? "Wrong email or password." : err.message;
    ui.password.focus();
  } finally {
    button.disabled = false;
  }
});

ui.logout.addEventListener("click", async () => {
  ui.logout.disabled = true;
  try {
    await api("POST", "/auth/logout");
  } catch {
    // Logged out already, or the server is unreachable: leave the page logged out either way.
  } finally {
    ui.logout.disabled = false;
  }
  teardown();
  showLogin("You are logged out.");
});

function enter(session) {
  me = session;
  csrf = session.csrf_token;
  ui.boot.hidden = true;
  ui.login.hidden = true;
  ui.app.hidden = false;
  ui.logout.hidden = false;
  ui.whoami.textContent = `${session.user.name} · ${session.organization.name}`;
  ui.mainNav.hidden = false;
  ui.navSettings.hidden = !isAdmin();
  ui.alerts.hidden = false;
  renderAlerts();
  showScreen("inbox");
  agentNames.set(session.user.id, session.user.name);
  void loadAgentNames();
  connectOrg();
  void loadInbox();
}

/** The session cookie stopped working (expired, logged out elsewhere). */
function sessionEnded() {
  if (!me) return;
  teardown();
  showLogin("Your session has ended. Log in again.");
}

function teardown() {
  closeConversation();
  showScreen("inbox");
  settings.clear();
  ui.mainNav.hidden = true;
  ui.alerts.hidden = true;
  if (ui.desktopAlerts) ui.desktopAlerts.hidden = true;
  team = [];
  ui.teamList.replaceChildren();
  alerted.clear();
  orgSocket?.stop();
  orgSocket = null;
  me = null;
  csrf = null;
  conversations = [];
  unread.clear();
  previews.clear();
  agentNames.clear();
  sessionOverrides.clear();
  ui.inbox.replaceChildren();
}

/** After repeated socket failures: is it the network, or did our session end? */
async function checkSession() {
  if (!me) return;
  try {
    await api("GET", "/auth/me");
  } catch {
    // api() handles 401 (sessionEnded); anything else is the network: keep retrying.
  }
}

/** Teammates: names for "assigned to …" and the presence list. */
async function loadAgentNames() {
  try {
    team = await api("GET", "/api/company/agents");
    for (const a of team) agentNames.set(a.id, a.name);
    renderInbox();
    renderTeam();
    if (current) renderSession();
  } catch {
    // Offline or logged out meanwhile: names then come from assignment events.
  }
}

// ---- screens: the inbox, the settings (owners and admins) --------------------------------------

const isAdmin = () => me?.user.role === "owner" || me?.user.role === "admin";

const settings = createSettings({
  root: ui.settings,
  api: (method, path, body) => api(method, path, body),
  me: () => me,
  isOnline: (id) => onlineAgents.has(id),
  onTeamChanged: () => void loadAgentNames(),
});

function showScreen(name) {
  const inSettings = name === "settings" && isAdmin();
  ui.app.hidden = !me || inSettings;
  ui.settings.hidden = !inSettings;
  ui.navInbox.setAttribute("aria-current", inSettings ? "false" : "page");
  ui.navSettings.setAttribute("aria-current", inSettings ? "page" : "false");
  if (inSettings) void settings.load();
}

ui.navInbox.addEventListener("click", () => showScreen("inbox"));
ui.navSettings.addEventListener("click", () => showScreen("settings"));

// ---- teammates' presence -----------------------------------------------------------------------

function renderTeam() {
  const people = team.filter((a) => !a.disabled);
  for (const id of onlineAgents) if (!people.some((a) => a.id === id)) people.push({ id, name: agentNames.get(id) ?? "An agent", role: "agent" });
  people.sort((a, b) => Number(onlineAgents.has(b.id)) - Number(onlineAgents.has(a.id)) || a.name.localeCompare(b.name));
  setChildren(
    ui.teamList,
    people.map((a) => {
      const online = onlineAgents.has(a.id);
      return h(
        "li",
        { class: online ? "online" : "offline", "data-agent-id": a.id },
        h("span", { class: "dot", "aria-hidden": "true" }),
        h("span", { class: "team-name", text: a.id === me?.user.id ? `${a.name} (you)` : a.name }),
        h("span", { class: "team-state", text: online ? "online" : "offline" }),
      );
    }),
  );
  settings.presenceChanged();
  if (current) renderSession(); // the hand-to list marks who is offline
}

// ---- alerts: a sound and a desktop notification for new unassigned conversations ---------------

const prefs = storage("localStorage");
let alertsOn = prefs.get("parley_console_alerts") !== "off";
const alerted = new Set(); // conversation:session pairs already announced
const checking = new Set(); // the same, being checked right now
let audio = null;

/** Browsers start audio only after a user gesture: the context is made (or resumed) on one. */
function unlockAudio() {
  try {
    audio ??= new AudioContext();
    if (audio.state === "suspended") void audio.resume();
  } catch {
    audio = null; // no Web Audio here: alerts stay silent
  }
}
document.addEventListener("pointerdown", unlockAudio, { capture: true });
document.addEventListener("keydown", unlockAudio, { capture: true });

function chime() {
  if (!audio) return;
  const t = audio.currentTime;
  const gain = audio.createGain();
  gain.gain.setValueAtTime(0.0001, t);
  gain.gain.exponentialRampToValueAtTime(0.2, t + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.45);
  gain.connect(audio.destination);
  for (const [freq, at] of [[880, 0], [1320, 0.12]]) {
    const osc = audio.createOscillator();
    osc.type = "sine";
    osc.frequency.setValueAtTime(freq, t + at);
    osc.connect(gain);
    osc.start(t + at);
    osc.stop(t + at + 0.3);
  }
}

function renderAlerts() {
  ui.alerts.textContent = alertsOn ? "Alerts on" : "Alerts muted";
  ui.alerts.setAttribute("aria-pressed", String(alertsOn));
  ui.alerts.title = alertsOn ? "A sound and a desktop notification for each new conversation. Click to mute." : "Muted. Click to turn sound and desktop notifications on.";
  const askable = alertsOn && "Notification" in window && Notification.permission === "default";
  if (askable && !ui.desktopAlerts) {
    ui.desktopAlerts = h("button", { type: "button", id: "desktop-alerts", class: "alerts", text: "Allow desktop notifications", onclick: () => void askPermission() });
    ui.alerts.after(ui.desktopAlerts);
  }
  if (ui.desktopAlerts) ui.desktopAlerts.hidden = !askable || !me;
}

async function askPermission() {
  try {
    await Notification.requestPermission();
  } catch {
    // Old callback-only implementations, or refused outright: the sound still plays.
  }
  renderAlerts();
}

ui.alerts.addEventListener("click", () => {
  alertsOn = !alertsOn;
  prefs.set("parley_console_alerts", alertsOn ? "on" : "off");
  if (alertsOn) {
    unlockAudio();
    if ("Notification" in window && Notification.permission === "default") void askPermission();
  }
  renderAlerts();
});

/**
 * A conversation may have just arrived in the unassigned inbox (a visitor opened a session, or a
 * bot handed one off). The conversation object is the authority: alert only when its session is
 * open and nobody has it, once per session.
 */
async function maybeAlert(conversationId, sessionId, preview) {
  const key = `${conversationId}:${sessionId ?? ""}`;
  if (!alertsOn || !me || alerted.has(key) || checking.has(key)) return;
  checking.add(key);
  let conv;
  try {
    conv = await api("GET", `/api/conversations/${encodeURIComponent(conversationId)}`);
  } catch {
    return; // gone, or no access: nothing to announce
  } finally {
    checking.delete(key);
  }
  const s = conv.active_session;
  // A session with a bot is not waiting for anyone yet: its hand-off will be announced.
  if (!alertsOn || !s || s.status !== "open" || s.assigned_agent_id || alerted.has(key)) return;
  alerted.add(key);
  chime();
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const n = new Notification("New conversation", { body: preview ? `${visitorName(conv)}: ${preview}` : visitorName(conv), tag: key });
    n.onclick = () => {
      window.focus();
      showScreen("inbox");
      openConversation(conv);
      n.close();
    };
  } catch {
    // Notifications only from a service worker here (some mobile browsers): the sound is enough.
  }
}

// ---- inbox ------------------------------------------------------------------------------------

function connectOrg() {
  orgSocket = new ReconnectingSocket({
    url: () => socketUrl("/ws/org"),
    heartbeat: false, // the org hub answers pings with an error frame: no cheap heartbeat there
    onFrame: onOrgEvent,
    onState: (state, info) => {
      if (state === "open") setOrgConn("Live", "");
      else if (state === "waiting") {
        setOrgConn(`Inbox offline, retrying in ${Math.max(1, Math.round(info.retryInMs / 1000))} s`, "warn");
        // 1008: the server closed it because our session ended (logout elsewhere, disabled).
        if (info.attempt >= 2 || info.code === 1008) void checkSession();
      } else if (state === "failed") setOrgConn("Inbox connection refused", "warn");
      else if (state === "connecting") setOrgConn("Connecting…", "warn");
    },
  });
  orgSocket.start();
}

function setOrgConn(text, cls) {
  const online = onlineAgents.size;
  ui.orgConn.className = `org-conn ${cls}`;
  ui.orgConn.textContent = text === "Live" ? `Live · ${online} agent${online === 1 ? "" : "s"} online` : text;
}

function onOrgEvent(event) {
  switch (event?.type) {
    case "ready":
      orgSocket.markReady();
      onlineAgents = new Set(event.online_agents ?? []);
      setOrgConn("Live", "");
      renderTeam();
      void loadInbox(); // anything missed while disconnected
      return;
    case "agent_status_changed":
      if (event.status === "online") onlineAgents.add(event.agent_id);
      else onlineAgents.delete(event.agent_id);
      if (orgSocket?.isOpen) setOrgConn("Live", "");
      if (event.status === "online" && !agentNames.has(event.agent_id)) void loadAgentNames(); // a new teammate
      renderTeam();
      return;
    case "conversation_updated":
      previews.set(event.conversation_id, { content: event.content, content_type: event.content_type, sender_type: event.sender_type });
      if (event.conversation_id !== current?.id && event.sender_type === "end_user") unread.add(event.conversation_id);
      if (event.new_session) overrideSession(event.conversation_id, { status: "open", assigned_agent_id: null, tags: [] });
      if (event.new_session && event.sender_type === "end_user") void maybeAlert(event.conversation_id, event.session_id, event.content);
      scheduleInboxRefresh();
      return;
    case "conversation_handoff":
      overrideSession(event.conversation_id, { status: "open", assigned_agent_id: null });
      void maybeAlert(event.conversation_id, event.session_id, "asked for a person");
      scheduleInboxRefresh();
      return;
    case "conversation_assigned":
      if (event.assigned_to && event.agent_name) agentNames.set(event.assigned_to, event.agent_name);
      overrideSession(event.conversation_id, { status: "open", assigned_agent_id: event.assigned_to ?? null });
      scheduleInboxRefresh();
      return;
    case "conversation_resolved":
      overrideSession(event.conversation_id, { status: "resolved", tags: event.tags });
      scheduleInboxRefresh();
      return;
  }
}

/**
 * The lists come from D1, which the conversation objects update a moment after they publish
 * an event. Live session changes are laid over fetched rows for a short while so that a refresh
 * racing that write does not show stale state (and the list is fetched again after it).
 */
const OVERRIDE_MS = 10_000;
const sessionOverrides = new Map(); // conversation id -> { patch, at }

function overrideSession(id, patch) {
  const prev = sessionOverrides.get(id);
  sessionOverrides.set(id, { patch: { ...(prev?.patch ?? {}), ...patch }, at: Date.now() });
  conversations = applyOverrides(conversations);
  renderInbox();
}

function applyOverrides(list) {
  const now = Date.now();
  const out = [];
  for (const conv of list) {
    const o = sessionOverrides.get(conv.id);
    if (o && now - o.at > OVERRIDE_MS) sessionOverrides.delete(conv.id);
    if (!o || now - o.at > OVERRIDE_MS) {
      out.push(conv);
      continue;
    }
    const base = conv.active_session ?? { id: null, status: "open", assigned_agent_id: null, tags: [] };
    const merged = { ...base, ...o.patch, tags: o.patch.tags ?? base.tags ?? [] };
    const session = merged.status === "open" ? merged : null;
    if (filter === "unassigned" && (!session || session.assigned_agent_id)) continue;
    if (filter === "mine" && (!session || session.assigned_agent_id !== me?.user.id)) continue;
    out.push({ ...conv, active_session: session });
  }
  return out;
}

let refreshTimer = null;
let settleTimer = null;
/** Refetch soon (events come in bursts), and once more after the objects' D1 writes settle. */
function scheduleInboxRefresh() {
  clearTimeout(refreshTimer);
  clearTimeout(settleTimer);
  refreshTimer = setTimeout(() => void loadInbox(), 300);
  settleTimer = setTimeout(() => void loadInbox(), 2_500);
}

let inboxRequest = 0;
async function loadInbox() {
  if (!me) return;
  const mine = ++inboxRequest;
  const wanted = filter;
  if (conversations.length === 0) ui.inboxStatus.textContent = "Loading…";
  try {
    const list = await api("GET", `/api/conversations/?filter=${encodeURIComponent(wanted)}&limit=100`);
    if (mine !== inboxRequest) return; // a newer request (or another tab) superseded this one
    conversations = applyOverrides(list);
    ui.inboxStatus.textContent = conversations.length === 0 ? emptyText(wanted) : "";
    renderInbox();
  } catch (err) {
    if (mine === inboxRequest) ui.inboxStatus.textContent = `Could not load the inbox: ${err.message}`;
  }
}

const emptyText = (f) => (f === "unassigned" ? "No unassigned conversations." : f === "mine" ? "Nothing assigned to you." : "No conversations yet.");

function visitorName(conv) {
  const u = conv?.end_user;
  return u?.display_name || `Visitor ${String(u?.external_id ?? "").slice(-6)}`;
}

function assigneeText(agentId) {
  if (!agentId) return "unassigned";
  if (agentId === me?.user.id) return "assigned to you";
  return `assigned to ${agentNames.get(agentId) ?? "another agent"}`;
}

function renderInbox() {
  // Live refreshes rebuild the list: keep keyboard focus on the same conversation.
  const focusedId = ui.inbox.contains(document.activeElement) ? document.activeElement.dataset.id : null;
  const items = conversations.map((conv) => {
    const s = conv.active_session;
    const status = s ? `Open · ${assigneeText(s.assigned_agent_id)}` : "Resolved";
    const preview = previews.get(conv.id);
    const isUnread = unread.has(conv.id);
    return h(
      "li",
      {},
      h(
        "button",
        { type: "button", "data-id": conv.id, "aria-current": conv.id === current?.id ? "true" : "false", onclick: () => openConversation(conv) },
        h(
          "span",
          { class: "conv-name" },
          h("span", { text: visitorName(conv) }),
          isUnread ? h("span", { class: "unread", text: "●", title: "new messages" }, h("span", { class: "visually-hidden", text: " new messages" })) : null,
        ),
        h("span", { class: "conv-line", text: `${status} · ${formatTime(conv.updated_at)}` }),
        preview ? h("span", { class: "conv-line", text: previewText(preview) }) : null,
        s?.tags?.length ? h("span", { class: "conv-line", text: `Tags: ${s.tags.join(", ")}` }) : null,
      ),
    );
  });
  setChildren(ui.inbox, items);
  if (focusedId) [...ui.inbox.querySelectorAll("button")].find((b) => b.dataset.id === focusedId)?.focus();
}

function previewText(p) {
  const who = p.sender_type === "end_user" ? "Visitor" : p.sender_type === "agent" ? "Agent" : p.sender_type;
  const text = p.content || `[${p.content_type}]`;
  return `${who}: ${text.length > 80 ? `${text.slice(0, 80)}…` : text}`;
}

// Tabs: click, or arrow keys between them (the WAI-ARIA tabs pattern).
for (const tab of ui.tabs) {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (event) => {
    const i = ui.tabs.indexOf(tab);
    const next = event.key === "ArrowRight" ? ui.tabs[(i + 1) % ui.tabs.length] : event.key === "ArrowLeft" ? ui.tabs[(i + ui.tabs.length - 1) % ui.tabs.length] : null;
    if (next) {
      event.preventDefault();
      next.focus();
      selectTab(next);
    }
  });
}

function selectTab(tab) {
  for (const t of ui.tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
  }
  ui.panel.setAttribute("aria-labelledby", tab.id);
  filter = tab.dataset.filter;
  conversations = [];
  ui.inbox.replaceChildren();
  void loadInbox();
}

// ---- one conversation -------------------------------------------------------------------------

function openConversation(conv) {
  if (current?.id === conv.id) return;
  closeConversation();
  unread.delete(conv.id);
  const id = conv.id;
  const client = new ConversationClient({
    url: () => socketUrl(`/ws/conversations/${encodeURIComponent(id)}`),
    fetchHistory: () => api("GET", `/api/conversations/${encodeURIComponent(id)}/messages?limit=100`),
    isSelf: (frame) => frame.sender_type === "agent" && frame.sender_id === me?.user.id,
    onMessages: renderMessages,
    onTyping: (frame) => typingIn.update(frame),
    onDraft: (draft) => current?.client === client && showDraft(draft),
    onSession: (session) => {
      if (!current || current.client !== client) return;
      current.session = session;
      renderSession();
    },
    onReady: () => markRead(),
    onState: (state, info) => showConvState(client, state, info),
    onError: (frame) => showError(frame.message),
  });
  current = { id, conv, client, session: conv.active_session };
  ui.viewEmpty.hidden = true;
  ui.viewBody.hidden = false;
  ui.viewTitle.textContent = visitorName(conv);
  ui.viewError.textContent = "";
  ui.tags.value = "";
  ui.reply.value = "";
  renderSession();
  renderInbox();
  client.start();
  void loadDetails(id);
}

// ---- the visitor's details, beside the conversation ----------------------------------------------

/** Attribute names that hold the page the visitor was on (the widget, seed 002's `Url`). */
const PAGE_URL_KEYS = ["page_url", "url", "page", "current_url"];

async function loadDetails(id) {
  ui.details.hidden = false;
  ui.detailsStatus.textContent = "Loading…";
  ui.detailsList.replaceChildren();
  ui.detailsAttrs.replaceChildren();
  ui.detailsAttrsTitle.hidden = true;
  let conv;
  try {
    conv = await api("GET", `/api/conversations/${encodeURIComponent(id)}`);
  } catch (err) {
    if (current?.id === id) ui.detailsStatus.textContent = `Could not load the visitor's details: ${err.message}`;
    return;
  }
  if (current?.id !== id) return;
  ui.detailsStatus.textContent = "";
  const u = conv.end_user ?? {};
  const attrs = u.attributes && typeof u.attributes === "object" ? u.attributes : {};
  const pageKey = PAGE_URL_KEYS.find((k) => typeof attrs[k] === "string" && attrs[k]);
  const pageUrl = pageKey ? attrs[pageKey] : null;
  const row = (label, value) => (value ? [h("dt", { text: label }), h("dd", { "data-field": label.toLowerCase().replace(/\W+/g, "-") }, value)] : []);
  const link = (url) => {
    const a = h("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow", text: url });
    return a.hasAttribute("href") ? a : h("span", { text: url }); // not http(s): shown, never followed
  };
  setChildren(
    ui.detailsList,
    row("Name", u.display_name || visitorName(conv)),
    row("Email", u.email ? h("span", { text: u.email }) : null),
    row("Phone", u.phone),
    row("Identity", u.verified ? "verified (signed by your site)" : "not verified"),
    // A verified id is the site's own user id; an unverified one is the visitor's only credential
    // for their history (a random id the widget made): not worth showing, better not copied around.
    row("User id", u.verified ? u.external_id : null),
    row("Page URL", pageUrl ? link(pageUrl) : null),
    row("Channel", conv.channel ? `${conv.channel.name} · ${conv.channel.kind}` : null),
    row("First seen", conv.created_at ? formatTime(conv.created_at) : null),
  );
  const others = Object.entries(attrs).filter(([k]) => k !== pageKey);
  ui.detailsAttrsTitle.hidden = others.length === 0;
  setChildren(
    ui.detailsAttrs,
    others.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: typeof v === "string" ? v : JSON.stringify(v) })]),
  );
}

function closeConversation() {
  if (!current) return;
  typingOut.stop(true);
  current.client.stop();
  current = null;
  clearInterval(convCountdown);
  typingIn.clear();
  showDraft("");
  listCache.clear();
  ui.messages.replaceChildren();
  ui.viewBody.hidden = true;
  ui.viewEmpty.hidden = false;
  ui.details.hidden = true;
  ui.uploadStatus.textContent = "";
}

function renderMessages(sorted, pending) {
  if (!current) return;
  const connected = current.client.socket.isOpen;
  const items = sorted.map((m) => ({
    key: `m:${m.id}`,
    render: () => {
      const staff = m.sender_type === "agent" || m.sender_type === "bot";
      const who =
        m.sender_type === "end_user"
          ? (m.sender_name ?? visitorName(current?.conv))
          : m.sender_type === "system"
            ? ""
            : m.sender_type === "agent" && m.sender_id === me?.user.id
              ? "You"
              : (m.sender_name ?? (m.sender_type === "bot" ? "Bot" : "Agent"));
      return messageItem(m, { who, mine: staff, onChoose: null });
    },
  }));
  for (const p of pending) {
    items.push({ key: pendingKey(p, connected), render: () => pendingItem(p, { connected, onDiscard: (cid) => current?.client.discard(cid) }) });
  }
  if (items.length === 0) items.push({ key: "empty", render: () => h("li", { class: "empty", text: "No messages yet." }) });
  syncList(ui.messages, listCache, items);
  markRead();
}

let readTimer = null;
function markRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    if (!current || document.visibilityState !== "visible") return;
    // Everything shown is read: up to the newest message, once per new visitor message.
    const lastVisitor = current.client.sorted.findLast((m) => m.sender_type === "end_user");
    if (!lastVisitor || lastVisitor.seq <= (current.readSeq ?? 0)) return;
    current.readSeq = current.client.sorted.at(-1).seq;
    current.client.markRead(current.readSeq);
  }, 500);
}
document.addEventListener("visibilitychange", markRead);

function renderSession() {
  if (!current) return;
  const s = current.session;
  let text;
  if (!s) text = "No support session yet.";
  else if (s.status === "resolved") text = `Resolved${s.tags?.length ? ` · tags: ${s.tags.join(", ")}` : ""}. The visitor's next message reopens it.`;
  else text = `Open · ${assigneeText(s.assigned_agent_id)}${s.tags?.length ? ` · tags: ${s.tags.join(", ")}` : ""}`;
  ui.viewSession.textContent = text;
  const open = s?.status === "open";
  ui.claim.hidden = open && s.assigned_agent_id === me?.user.id;
  ui.claim.disabled = !open || Boolean(s.assigned_agent_id);
  ui.resolve.disabled = !open;
  ui.tags.disabled = !open;
  // Handing on: the conversation's agent, or an owner or admin (the server checks the same).
  const mine = open && s.assigned_agent_id === me?.user.id;
  ui.transferForm.hidden = !open || !(mine || isAdmin());
  ui.unassign.hidden = !s?.assigned_agent_id;
  const keep = ui.transferTo.value;
  const choices = team.filter((a) => !a.disabled && a.id !== s?.assigned_agent_id);
  setChildren(
    ui.transferTo,
    choices.length === 0
      ? h("option", { value: "", text: "no teammate to hand to" })
      : choices.map((a) => h("option", { value: a.id, text: `${a.id === me?.user.id ? `${a.name} (you)` : a.name}${onlineAgents.has(a.id) ? "" : " · offline"}` })),
  );
  if (choices.some((a) => a.id === keep)) ui.transferTo.value = keep;
  ui.transfer.disabled = choices.length === 0;
}

/** After a transfer or unassign: the answer's session, until the socket's own session frame. */
function handedOn(id, res) {
  if (current?.id === id && current.session) {
    current.session = { ...current.session, assigned_agent_id: res.assigned_agent_id };
    renderSession();
  }
  scheduleInboxRefresh();
}

ui.transferForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current || !ui.transferTo.value) return;
  const { id } = current;
  const to = ui.transferTo.value;
  ui.transfer.disabled = true;
  showError("");
  try {
    handedOn(id, await api("POST", `/api/conversations/${encodeURIComponent(id)}/transfer`, { agent_id: to }));
  } catch (err) {
    showError(`Could not transfer: ${err.message}`);
    renderSession();
  }
});

ui.unassign.addEventListener("click", async () => {
  if (!current) return;
  const { id } = current;
  ui.unassign.disabled = true;
  showError("");
  try {
    handedOn(id, await api("POST", `/api/conversations/${encodeURIComponent(id)}/unassign`));
  } catch (err) {
    showError(`Could not unassign: ${err.message}`);
    renderSession();
  } finally {
    ui.unassign.disabled = false;
  }
});

ui.claim.addEventListener("click", async () => {
  if (!current) return;
  const { id } = current;
  ui.claim.disabled = true;
  showError("");
  try {
    const res = await api("POST", `/api/conversations/${encodeURIComponent(id)}/assign`);
    if (current?.id === id && current.session) {
      current.session = { ...current.session, assigned_agent_id: res.assigned_agent_id };
      renderSession();
    }
    scheduleInboxRefresh();
    ui.reply.focus();
  } catch (err) {
    showError(err.code === "already_assigned" ? "Another agent has already claimed this conversation." : `Could not claim: ${err.message}`);
    renderSession();
  }
});

ui.resolveForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current) return;
  const { id } = current;
  const tags = splitList(ui.tags.value);
  ui.resolve.disabled = true;
  showError("");
  try {
    const res = await api("POST", `/api/conversations/${encodeURIComponent(id)}/resolve`, tags.length ? { tags } : {});
    if (current?.id === id && current.session) {
      current.session = { ...current.session, status: res.status, tags: res.tags };
      renderSession();
    }
    ui.tags.value = "";
    scheduleInboxRefresh();
  } catch (err) {
    showError(`Could not resolve: ${err.message}`);
    renderSession();
  }
});

const splitList = (text) => [...new Set(text.split(",").map((s) => s.trim()).filter(Boolean))];

ui.private.addEventListener("change", () => {
  ui.replyForm.classList.toggle("private", ui.private.checked);
  if (ui.private.checked) typingOut.stop(true); // the visitor sees no typing for a private note
});

ui.quick.addEventListener("change", () => {
  ui.buttons.hidden = ui.choicesAs.hidden = !ui.quick.checked;
  if (ui.quick.checked) {
    ui.cards.checked = false;
    ui.cardsEditor.hidden = true;
    ui.buttons.focus();
  }
});

ui.cards.addEventListener("change", () => {
  ui.cardsEditor.hidden = !ui.cards.checked;
  if (ui.cards.checked) {
    ui.quick.checked = false;
    ui.buttons.hidden = ui.choicesAs.hidden = true;
    ui.cardsText.focus();
  }
});

/** "Title | subtitle | image URL | Button A, Button B" per line -> seed 001's carousel cards. */
function parseCards(text) {
  const cards = [];
  for (const [i, line] of text.split("\n").entries()) {
    if (!line.trim()) continue;
    const [title = "", subtitle = "", image = "", buttons = ""] = line.split("|").map((p) => p.trim());
    if (!title) throw new Error(`card ${i + 1} needs a title`);
    if (image && !/^https?:\/\/\S+$/i.test(image)) throw new Error(`card ${i + 1}: the image must be an http(s) URL`);
    const labels = splitList(buttons);
    if (labels.length > 10) throw new Error(`card ${i + 1}: at most 10 buttons`);
    cards.push({ title, ...(subtitle ? { subtitle } : {}), ...(image ? { image_url: image } : {}), ...(labels.length ? { buttons: labels.map((label) => ({ label, value: label })) } : {}) });
  }
  if (cards.length === 0) throw new Error("write at least one card (one per line)");
  if (cards.length > 20) throw new Error("at most 20 cards");
  return cards;
}

function resetComposer() {
  ui.buttons.value = "";
  ui.quick.checked = false;
  ui.buttons.hidden = ui.choicesAs.hidden = true;
  ui.cardsText.value = "";
  ui.cards.checked = false;
  ui.cardsEditor.hidden = true;
}

// ---- files and images: init, PUT the bytes, finish (src/uploads/routes.ts) ----------------------

ui.uploadFile.addEventListener("change", async () => {
  const file = ui.uploadFile.files?.[0];
  ui.uploadFile.value = "";
  if (!file || !current) return;
  if (ui.private.checked) return showError("Files cannot be private notes: untick “Private note” to send one.");
  const { id } = current;
  const caption = ui.reply.value.trim();
  ui.uploadStatus.className = "upload-status";
  ui.uploadStatus.textContent = `Uploading ${file.name}…`;
  try {
    const slot = await api("POST", `/api/conversations/${encodeURIComponent(id)}/uploads`);
    if (file.size > slot.max_bytes) throw new HttpError(413, "payload_too_large", `files are limited to ${Math.round(slot.max_bytes / 1024 / 1024)} MiB`);
    let res;
    try {
      res = await fetch(slot.url, { method: "PUT", body: file, headers: { "Content-Type": file.type || "application/octet-stream", "X-Filename": encodeURIComponent(file.name) }, credentials: "same-origin" });
    } catch (err) {
      throw new HttpError(0, "network", `could not reach the server (${err.message})`);
    }
    if (!res.ok) {
      const body = await res.json().catch(() => null);
      throw new HttpError(res.status, body?.error?.code ?? "http", body?.error?.message ?? `HTTP ${res.status}`);
    }
    await api("POST", `/api/conversations/${encodeURIComponent(id)}/uploads/${encodeURIComponent(slot.token)}/finish`, caption ? { caption } : {});
    if (current?.id === id && caption) ui.reply.value = "";
    ui.uploadStatus.textContent = "";
  } catch (err) {
    ui.uploadStatus.className = "upload-status error";
    ui.uploadStatus.textContent = `${file.name} was not sent: ${err.message}`;
  }
});

ui.replyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!current) return;
  const content = ui.reply.value;
  if (ui.quick.checked) {
    const labels = splitList(ui.buttons.value);
    const dropdown = ui.choicesAs.value === "dropdown";
    if (labels.length === 0) return showError("Add at least one choice (comma-separated), or untick “Add choices”.");
    if (labels.length > (dropdown ? 100 : 20)) return showError(dropdown ? "At most 100 options." : "At most 20 quick buttons.");
    if (ui.private.checked) return showError("A private note cannot carry choices: the visitor would never see them.");
    const options = labels.map((label) => ({ label, value: label }));
    if (dropdown) current.client.send({ content, content_type: "dropdown", rich_media: { placeholder: "Choose…", options } });
    else current.client.send({ content, content_type: "quick_button", rich_media: { buttons: options } });
    resetComposer();
  } else if (ui.cards.checked) {
    let cards;
    try {
      cards = parseCards(ui.cardsText.value);
    } catch (err) {
      return showError(`Cards: ${err.message}.`);
    }
    if (ui.private.checked) return showError("A private note cannot carry cards: the visitor would never see them.");
    current.client.send({ content, content_type: "carousel", rich_media: { cards } });
    resetComposer();
  } else {
    if (!content.trim()) return;
    current.client.send({ content, private: ui.private.checked });
  }
  showError("");
  ui.uploadStatus.textContent = "";
  typingOut.stop(false);
  ui.private.checked = false;
  ui.replyForm.classList.remove("private"); // one note at a time: never leave "private" on by accident (or the reverse)
  ui.reply.value = "";
  ui.reply.focus();
});

ui.reply.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.replyForm.requestSubmit();
  }
});
ui.reply.addEventListener("input", () => typingOut.input(!ui.private.checked && ui.reply.value.trim() !== ""));
ui.reply.addEventListener("blur", () => typingOut.stop(true));

function showTyping(who) {
  const names = who.map((w) => w.name ?? (w.type === "end_user" ? visitorName(current?.conv) : "Someone"));
  ui.typing.textContent = names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

/** Typing preview (channels that opt in): the visitor's unsent text, as text. */
function showDraft(draft) {
  ui.draft.hidden = draft === "";
  ui.draft.textContent = draft === "" ? "" : `${visitorName(current?.conv)} is writing: ${draft}`;
}

function showError(text) {
  ui.viewError.textContent = text;
}

let convCountdown = null;
function showConvState(client, state, info) {
  if (current?.client !== client) return;
  clearInterval(convCountdown);
  renderMessages(client.sorted, [...client.pending.values()]);
  const conn = ui.viewConn;
  const retry = () => h("button", { type: "button", class: "link-button", text: "Retry now", onclick: () => client.retryNow() });
  switch (state) {
    case "connecting":
      conn.className = "conn warn";
      conn.textContent = info?.attempt ? "Reconnecting…" : "Connecting…";
      break;
    case "open":
      conn.className = "conn";
      conn.textContent = "";
      break;
    case "waiting": {
      typingIn.clear();
      conn.className = "conn warn";
      const tick = () => {
        const s = Math.round((info.at - Date.now()) / 1000);
        setChildren(conn, s >= 1 ? `Connection lost. Reconnecting in ${s} s… ` : "Connection lost. Reconnecting… ", retry());
      };
      tick();
      convCountdown = setInterval(tick, 1000);
      if (info.attempt >= 2) void checkSession();
      break;
    }
    case "failed":
      conn.className = "conn bad";
      setChildren(conn, "The server refused this conversation's connection (no access). ", retry());
      break;
  }
}

void boot();
