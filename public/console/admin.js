/**
 * The console's settings screens, for owners and admins (plain agents never see them, and the
 * routes answer them 403): the team (add, change role, disable/enable), API keys (create, the
 * secret shown once, revoke), channels (webchat with allowed origins and the snippet to paste,
 * mobile apps), and per channel its settings, its bot (GET/PUT/DELETE /api/integrations/:id/bot)
 * and, for mobile channels, its push credentials (…/push; stored secrets are never shown back);
 * routing (/api/routing: skill-group queues with business hours, agents' skills and capacity);
 * webhook endpoints (/api/webhooks: add with the signing secret shown once, enable/disable,
 * rotate, delete) and their delivery log, with replay of dead deliveries; the audit log
 * (/api/audit: who changed what, newest first, filtered by action or actor, "Older" for the next page).
 *
 * Everything is built with h() and textContent: names, origins and keys from the server never
 * become markup.
 */
import { h, setChildren } from "/shared/dom.js";

const splitList = (text) => [...new Set(text.split(",").map((s) => s.trim()).filter(Boolean))];
const lines = (text) => [...new Set(text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean))];

/** The snippets customers paste: seed 000's script tag with a public key, seed 001's with an embed token. */
export const widgetSnippet = (origin, publicKey) => `<script src="${origin}/widget.js" data-key="${publicKey}"></script>`;
/** Seed 000's React / Next.js variant: the same loader, added (and removed) by an effect. */
export const reactSnippet = (origin, publicKey) => `import { useEffect } from "react";

export default function ChatWidget() {
  useEffect(() => {
    const script = document.createElement("script");
    script.src = "${origin}/widget.js";
    script.setAttribute("data-key", "${publicKey}");
    script.async = true;
    document.body.appendChild(script);
    return () => {
      document.body.removeChild(script);
    };
  }, []);

  return null;
}`;
export const embedSnippet = (origin, embedToken) => `<script src="${origin}/chat-widget/embed.js" data-embed-token="${embedToken}"></script>`;

let ids = 0;
const uid = (p) => `${p}-${++ids}`;

/** A labelled control: returns [label, control]. */
function field(labelText, control, hint) {
  control.id ||= uid("f");
  return h("div", { class: "field" }, h("label", { htmlFor: control.id, text: labelText }), control, hint ? h("span", { class: "hint", text: hint }) : null);
}

/** A block of text to copy (a secret shown once, a snippet). */
function copyBox(label, text, cls = "") {
  const code = h("code", { text });
  const status = h("span", { class: "hint", role: "status" });
  return h(
    "div",
    { class: `copy-box ${cls}` },
    h("p", { class: "copy-label", text: label }),
    h("pre", {}, code),
    h("button", {
      type: "button",
      class: "secondary",
      text: "Copy",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          status.textContent = "Copied.";
        } catch {
          status.textContent = "Select the text and copy it by hand.";
        }
      },
    }),
    status,
  );
}

/** A button that asks once more before acting ("Revoke" → "Confirm revoke"). */
function confirmButton(text, confirmText, action) {
  let armed = null;
  const button = h("button", {
    type: "button",
    class: "danger",
    text,
    onclick: async () => {
      if (!armed) {
        button.textContent = confirmText;
        armed = setTimeout(() => {
          armed = null;
          button.textContent = text;
        }, 5_000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      button.disabled = true;
      try {
        await action();
      } finally {
        button.disabled = false;
        button.textContent = text;
      }
    },
  });
  return button;
}

/**
 * @param {{ root: HTMLElement, api: (method: string, path: string, body?: unknown) => Promise<any>,
 *           me: () => any, isOnline: (agentId: string) => boolean, onTeamChanged: () => void }} opts
 */
export function createSettings(opts) {
  const { root, api } = opts;
  const origin = location.origin;

  const teamList = h("tbody");
  const teamStatus = h("p", { class: "error", role: "alert" });
  const teamNote = h("p", { class: "form-status", id: "team-note", role: "status" });
  const keysList = h("tbody");
  const keysStatus = h("p", { class: "error", role: "alert" });
  const keyResult = h("div", { id: "key-result", "aria-live": "polite" });
  const channelsList = h("tbody");
  const channelsStatus = h("p", { class: "error", role: "alert" });
  const channelResult = h("div", { id: "channel-result", "aria-live": "polite" });
  const channelPanel = h("section", { id: "channel-panel", class: "channel-panel", hidden: true, "aria-labelledby": "channel-panel-title" });

  // ---- the team ------------------------------------------------------------------------------
  const agentName = h("input", { id: "agent-name", required: true, maxLength: 200 });
  const agentEmail = h("input", { id: "agent-email", type: "email", required: true, maxLength: 254, autocomplete: "off" });
  const agentPassword = h("input", { id: "agent-password", type: "password", required: true, autocomplete: "new-password" });
  const agentRole = h("select", { id: "agent-role" }, h("option", { value: "agent", text: "Agent" }), h("option", { value: "admin", text: "Admin" }));
  const agentForm = h(
    "form",
    { id: "agent-form", class: "inline-form", onsubmit: (e) => void addAgent(e) },
    field("Name", agentName),
    field("Email", agentEmail),
    field("Temporary password", agentPassword, "at least 8 characters; tell them to keep it safe"),
    field("Role", agentRole),
    h("button", { type: "submit", text: "Add agent" }),
  );

  async function addAgent(event) {
    event.preventDefault();
    teamStatus.textContent = "";
    try {
      await api("POST", "/api/company/agents", { name: agentName.value, email: agentEmail.value, password: agentPassword.value, role: agentRole.value });
      agentForm.reset();
      await loadTeam();
      opts.onTeamChanged();
    } catch (err) {
      teamStatus.textContent = err.code === "email_taken" ? "An account with this email exists already." : `Could not add the agent: ${err.message}`;
    }
  }

  let team = [];
  /** The agent whose new-password form is open, and what is typed in it: a reload of the team keeps it. */
  let passwordOpen = null;
  async function loadTeam() {
    try {
      team = await api("GET", "/api/company/agents");
      renderTeam();
    } catch (err) {
      teamStatus.textContent = `Could not load the team: ${err.message}`;
    }
  }

  function renderTeam() {
    const me = opts.me();
    const rows = team.map((a) => {
      const self = a.id === me?.user.id;
      const locked = self || a.role === "owner";
      let roleCell;
      if (locked) roleCell = h("span", { text: roleLabel(a.role) });
      else {
        const select = h(
          "select",
          { "aria-label": `Role of ${a.name}`, onchange: (e) => void patchAgent(a, { role: e.currentTarget.value }) },
          h("option", { value: "agent", text: "Agent" }),
          h("option", { value: "admin", text: "Admin" }),
        );
        select.value = a.role;
        roleCell = select;
      }
      const status = a.disabled ? "Disabled" : opts.isOnline(a.id) ? "Online" : "Offline";
      const action = locked
        ? h("span", { class: "hint", text: self ? "you" : "" })
        : h(
            "span",
            { class: "actions" },
            a.disabled
              ? h("button", { type: "button", class: "secondary", text: "Enable", "aria-label": `Enable ${a.name}`, onclick: () => void patchAgent(a, { disabled: false }) })
              : h("button", { type: "button", class: "danger", text: "Disable", "aria-label": `Disable ${a.name}`, onclick: () => void patchAgent(a, { disabled: true }) }),
            // An admin's password is the owner's to set (the server says so too).
            a.role === "agent" || me?.user.role === "owner"
              ? h("button", { type: "button", class: "secondary", text: "Set password", "aria-label": `Set a new password for ${a.name}`, onclick: (e) => passwordForm(e.currentTarget.parentElement, a) })
              : null,
          );
      return h(
        "tr",
        { "data-agent-id": a.id, class: a.disabled ? "disabled" : "" },
        h("td", { text: a.name }),
        h("td", { text: a.email }),
        h("td", {}, roleCell),
        h("td", { class: "agent-status", text: status }),
        h("td", {}, action),
      );
    });
    setChildren(teamList, rows);
    const open = passwordOpen && team.find((a) => a.id === passwordOpen.id);
    const cell = open && teamList.querySelector(`tr[data-agent-id="${CSS.escape(open.id)}"] .actions`);
    if (cell) passwordForm(cell, open, false);
    else passwordOpen = null;
  }

  /**
   * Replaces the row's actions with a one-field form: a new temporary password for that agent. It
   * stays open, with what was typed, when the team list is drawn again (a role change's reload).
   */
  function passwordForm(cell, agent, focus = true) {
    if (passwordOpen?.id !== agent.id) passwordOpen = { id: agent.id, value: "" };
    const input = h("input", {
      type: "password",
      class: "new-password",
      autocomplete: "new-password",
      required: true,
      placeholder: "New temporary password",
      "aria-label": `New password for ${agent.name}`,
      oninput: (e) => passwordOpen && (passwordOpen.value = e.currentTarget.value),
    });
    input.value = passwordOpen.value;
    cell.replaceChildren(
      h(
        "form",
        {
          class: "row",
          onsubmit: (event) => {
            event.preventDefault();
            passwordOpen = null;
            void patchAgent(agent, { password: input.value });
          },
        },
        input,
        h("button", { type: "submit", text: "Save password" }),
        h("button", { type: "button", class: "link-button", text: "Cancel", onclick: () => ((passwordOpen = null), renderTeam()) }),
      ),
    );
    if (focus) input.focus();
  }

  async function patchAgent(agent, change) {
    teamStatus.textContent = "";
    teamNote.textContent = "";
    try {
      const done = await api("PATCH", `/api/company/agents/${encodeURIComponent(agent.id)}`, change);
      if (change.password !== undefined) teamNote.textContent = `New password set for ${done.name}${done.revoked_sessions ? "; they were logged out" : ""}.`;
      if (change.disabled === true) {
        const n = done.released_conversations ?? 0;
        teamNote.textContent = `${done.name} is disabled and logged out${n ? `; ${n} open conversation${n === 1 ? "" : "s"} went back to the unassigned inbox` : ""}.`;
      }
    } catch (err) {
      teamStatus.textContent = `Could not change ${agent.name}: ${err.message}`;
    }
    await loadTeam();
    opts.onTeamChanged();
  }

  // ---- API keys ------------------------------------------------------------------------------
  const keyName = h("input", { id: "key-name", required: true, maxLength: 200, placeholder: "e.g. Website, CRM sync" });
  const keyKind = h(
    "select",
    { id: "key-kind" },
    h("option", { value: "public", text: "Public (pk_…, for the widget on your site)" }),
    h("option", { value: "secret", text: "Secret (sk_…, for your servers only)" }),
  );
  const keyForm = h("form", { id: "key-form", class: "inline-form", onsubmit: (e) => void createKey(e) }, field("Name", keyName), field("Kind", keyKind), h("button", { type: "submit", text: "Create key" }));

  async function createKey(event) {
    event.preventDefault();
    keysStatus.textContent = "";
    try {
      const key = await api("POST", "/api/company/api-keys", { name: keyName.value, kind: keyKind.value });
      keyForm.reset();
      setChildren(
        keyResult,
        h("div", { class: "once" }, h("strong", { text: `Key “${key.name}” created.` }), " It is shown only now: copy it somewhere safe."),
        copyBox(key.kind === "secret" ? "Secret key (servers only: Authorization: Bearer …)" : "Public key", key.key, "key-secret"),
        key.kind === "public" ? copyBox("Paste this before </body> on your site (seed 000’s widget tag):", widgetSnippet(origin, key.key), "snippet") : null,
        key.kind === "public" ? copyBox("Or, in a React / Next.js app, render this component once (in a layout):", reactSnippet(origin, key.key), "snippet-react") : null,
      );
      await loadKeys();
    } catch (err) {
      keysStatus.textContent = `Could not create the key: ${err.message}`;
    }
  }

  async function loadKeys() {
    try {
      const keys = await api("GET", "/api/company/api-keys");
      setChildren(
        keysList,
        keys.length === 0
          ? h("tr", {}, h("td", { colspan: "5", class: "hint", text: "No keys yet." }))
          : keys.map((k) =>
              h(
                "tr",
                { "data-key-id": k.id },
                h("td", { text: k.name }),
                h("td", { text: k.kind }),
                h("td", {}, h("code", { text: `${k.prefix}…` })),
                h("td", { text: k.created_at ? new Date(k.created_at.replace(" ", "T") + (k.created_at.includes("Z") ? "" : "Z")).toLocaleString() : "" }),
                h(
                  "td",
                  {},
                  confirmButton("Revoke", "Confirm revoke", async () => {
                    try {
                      await api("DELETE", `/api/company/api-keys/${encodeURIComponent(k.id)}`);
                      keyResult.replaceChildren();
                    } catch (err) {
                      keysStatus.textContent = `Could not revoke: ${err.message}`;
                    }
                    await loadKeys();
                  }),
                ),
              ),
            ),
      );
    } catch (err) {
      keysStatus.textContent = `Could not load the keys: ${err.message}`;
    }
  }

  // ---- channels ------------------------------------------------------------------------------
  const chName = h("input", { id: "channel-name", required: true, maxLength: 200, placeholder: "e.g. Shop" });
  const chOrigins = h("textarea", { id: "channel-origins", rows: 3, placeholder: "https://shop.example\nhttps://www.shop.example" });
  const chTitle = h("input", { id: "channel-title", maxLength: 200, placeholder: "Chat with us" });
  const chKind = h("select", { id: "channel-kind" }, h("option", { value: "webchat", text: "Website (webchat)" }), h("option", { value: "mobile", text: "Mobile app" }));
  const webOnly = h("div", { class: "web-only" }, field("Allowed origins (one per line; empty: any site)", chOrigins), field("Widget title", chTitle));
  chKind.addEventListener("change", () => (webOnly.hidden = chKind.value !== "webchat"));
  const channelForm = h("form", { id: "channel-form", class: "stack-form", onsubmit: (e) => void createChannel(e) }, field("Kind", chKind), field("Name", chName), webOnly, h("button", { type: "submit", text: "Create channel" }));

  async function createChannel(event) {
    event.preventDefault();
    channelsStatus.textContent = "";
    try {
      if (chKind.value === "webchat") {
        const body = { name: chName.value, allowed_origins: lines(chOrigins.value) };
        if (chTitle.value.trim()) body.title = chTitle.value.trim();
        const made = await api("POST", "/api/integrations/webchat", body);
        showEmbed(chName.value, made.token);
      } else {
        const made = await api("POST", "/api/integrations/mobile", { name: chName.value });
        showAppToken(chName.value, made.token, "Set its push credentials with “Configure”.");
      }
      channelForm.reset();
      webOnly.hidden = false;
      await loadChannels();
    } catch (err) {
      channelsStatus.textContent = `Could not create the channel: ${err.message}`;
    }
  }

  function showEmbed(name, token) {
    setChildren(
      channelResult,
      h("div", { class: "once" }, h("strong", { text: `Snippet for “${name}”.` }), " Its embed token is shown only now (you can make another later)."),
      copyBox("Paste this before </body> on the allowed sites (seed 001’s embed tag):", embedSnippet(origin, token), "snippet"),
    );
  }

  /** A mobile channel's credential: the embed token its app embeds (docs/push.md, section 3). */
  function showAppToken(name, token, extra = "") {
    setChildren(
      channelResult,
      h("div", { class: "once" }, h("strong", { text: `App credential for “${name}”.` }), ` Its embed token is shown only now (you can make another later). ${extra}`),
      copyBox("The app's embed token (refused from web pages: apps only)", token, "app-token"),
      copyBox("Seed 001's WebView page (put your user's id in session_id):", `${origin}/chat-widget?embed_token=${token}&session_id=YOUR_USER_ID`, "snippet"),
    );
  }

  let channels = [];
  async function loadChannels() {
    try {
      channels = await api("GET", "/api/integrations");
      setChildren(
        channelsList,
        channels.map((ch) =>
          h(
            "tr",
            { "data-channel-id": ch.id },
            h("td", { text: ch.name }, ch.is_default ? h("span", { class: "hint", text: " (default: public keys open it)" }) : null),
            h("td", { text: kindLabel(ch.kind) }),
            h("td", { text: ch.kind === "webchat" ? (ch.allowed_origins.length ? ch.allowed_origins.join(", ") : "any site") : "" }),
            h(
              "td",
              { class: "actions" },
              ch.kind === "webchat"
                ? h("button", {
                    type: "button",
                    class: "secondary",
                    text: "Get snippet",
                    "aria-label": `Get the snippet for ${ch.name}`,
                    onclick: async () => {
                      try {
                        const made = await api("POST", `/api/integrations/${encodeURIComponent(ch.id)}/embed-tokens`);
                        showEmbed(ch.name, made.token);
                      } catch (err) {
                        channelsStatus.textContent = `Could not make a snippet: ${err.message}`;
                      }
                    },
                  })
                : ch.kind === "mobile_sdk"
                  ? h("button", {
                      type: "button",
                      class: "secondary",
                      text: "New app token",
                      "aria-label": `Make a new app token for ${ch.name}`,
                      onclick: async () => {
                        try {
                          const made = await api("POST", `/api/integrations/${encodeURIComponent(ch.id)}/embed-tokens`);
                          showAppToken(ch.name, made.token);
                        } catch (err) {
                          channelsStatus.textContent = `Could not make a token: ${err.message}`;
                        }
                      },
                    })
                  : null,
              h("button", { type: "button", class: "secondary", text: "Configure", "aria-label": `Configure ${ch.name}`, onclick: () => void openChannel(ch) }),
            ),
          ),
        ),
      );
    } catch (err) {
      channelsStatus.textContent = `Could not load the channels: ${err.message}`;
    }
  }

  // ---- one channel: its bot, its push credentials ---------------------------------------------
  let panelFor = 0;
  async function openChannel(ch) {
    const mine = ++panelFor;
    channelPanel.hidden = false;
    setChildren(channelPanel, h("p", { class: "hint", text: `Loading ${ch.name}…` }));
    const bot = await botEditor(ch);
    const push = ch.kind === "mobile_sdk" ? await pushEditor(ch) : null;
    if (mine !== panelFor) return; // another channel was opened meanwhile
    setChildren(
      channelPanel,
      h("h3", { id: "channel-panel-title", text: `${ch.name} · ${kindLabel(ch.kind)}` }),
      h("button", { type: "button", class: "link-button", text: "Close", onclick: () => (channelPanel.hidden = true) }),
      ch.kind === "webchat" || ch.kind === "mobile_sdk" ? channelEditor(ch) : null,
      bot,
      push,
    );
    channelPanel.scrollIntoView({ block: "nearest" });
  }

  /** The channel itself: name, (webchat) allowed origins and title, identity verification and its secret. */
  function channelEditor(ch) {
    const base = `/api/integrations/${encodeURIComponent(ch.id)}`;
    const status = h("p", { class: "form-status", role: "status" });
    const name = h("input", { id: "edit-channel-name", required: true, maxLength: 200, value: ch.name });
    const origins = ch.kind === "webchat" ? h("textarea", { id: "edit-channel-origins", rows: 3, value: ch.allowed_origins.join("\n") }) : null;
    const title = ch.kind === "webchat" ? h("input", { id: "edit-channel-title", maxLength: 200, value: ch.title ?? "", placeholder: "Chat with us" }) : null;
    const identity = h("input", { type: "checkbox", id: "edit-channel-identity", checked: ch.require_identity });
    const preview = ch.kind === "webchat" ? h("input", { type: "checkbox", id: "edit-channel-preview", checked: ch.typing_preview }) : null;
    const secretBox = h("div", { id: "identity-secret", "aria-live": "polite" });
    const form = h(
      "form",
      {
        id: "channel-edit-form",
        class: "stack-form",
        onsubmit: async (event) => {
          event.preventDefault();
          status.className = "form-status";
          status.textContent = "";
          const body = { name: name.value, require_identity: identity.checked };
          if (origins) body.allowed_origins = lines(origins.value);
          if (title) body.title = title.value.trim() || null;
          if (preview) body.typing_preview = preview.checked;
          try {
            const saved = await api("PATCH", base, body);
            Object.assign(ch, saved);
            status.textContent = "Saved. It applies from the visitors' next request.";
            await loadChannels();
          } catch (err) {
            status.className = "form-status error";
            status.textContent = `Could not save the channel: ${err.message}`;
          }
        },
      },
      field("Name", name),
      origins ? field("Allowed origins (one per line; empty: any site)", origins, "exact origins like https://shop.example: scheme, host and port, nothing else") : null,
      title ? field("Widget title", title) : null,
      h("div", { class: "check" }, identity, h("label", { htmlFor: "edit-channel-identity", text: "Require identity verification (your server signs each visitor's id: docs/identity.md)" })),
      preview
        ? h("div", { class: "check" }, preview, h("label", { htmlFor: "edit-channel-preview", text: "Typing preview: agents see what visitors type before they send it (the widget tells visitors; drafts are never stored)" }))
        : null,
      h("div", { class: "row" }, h("button", { type: "submit", text: "Save channel" }), h("button", {
        type: "button",
        class: "secondary",
        id: "show-identity-secret",
        text: "Show identity secret",
        onclick: async () => {
          try {
            const { identity_secret } = await api("GET", `${base}/identity-secret`);
            setChildren(secretBox, copyBox("Identity secret: keep it on your server (HMAC-SHA256 of the visitor's id).", identity_secret, "identity-secret"));
          } catch (err) {
            status.className = "form-status error";
            status.textContent = `Could not read the secret: ${err.message}`;
          }
        },
      })),
      secretBox,
      status,
    );
    return h("section", { class: "channel-editor", "aria-labelledby": "channel-edit-title" }, h("h4", { id: "channel-edit-title", text: "Channel" }), form);
  }

  async function botEditor(ch) {
    const base = `/api/integrations/${encodeURIComponent(ch.id)}/bot`;
    let current = null;
    const status = h("p", { class: "form-status", role: "status" });
    try {
      current = await api("GET", base);
    } catch (err) {
      if (err.status !== 404) status.textContent = `Could not load the bot: ${err.message}`;
    }
    const kind = h("select", { id: "bot-kind" }, h("option", { value: "none", text: "No bot" }), h("option", { value: "flow", text: "Flow bot (built in)" }), h("option", { value: "webhook", text: "External bot (webhook)" }));
    kind.value = current?.kind ?? "none";
    const enabled = h("input", { type: "checkbox", id: "bot-enabled", checked: current ? current.enabled : true });
    const flow = current?.kind === "flow" ? current.config : {};
    const hook = current?.kind === "webhook" ? current.config : {};

    const greeting = h("textarea", { id: "bot-greeting", rows: 2, value: flow.greeting?.content ?? "" });
    const greetingButtons = h("input", { id: "bot-greeting-buttons", value: buttonsOf(flow.greeting), placeholder: "Quick buttons, comma-separated (optional)" });
    const intents = h("div", { id: "bot-intents", class: "intents" });
    const addIntent = (intent = {}) => {
      const row = h(
        "fieldset",
        { class: "intent" },
        h("legend", { text: "Intent" }),
        field("Name", h("input", { class: "intent-name", value: intent.name ?? "", maxLength: 100 })),
        field("Keywords (comma-separated)", h("input", { class: "intent-keywords", value: (intent.keywords ?? []).join(", ") })),
        field("Reply", h("textarea", { class: "intent-reply", rows: 2, value: intent.reply?.content ?? "" })),
        field("Quick buttons (comma-separated, optional)", h("input", { class: "intent-buttons", value: buttonsOf(intent.reply) })),
        h("button", { type: "button", class: "link-button", text: "Remove intent", onclick: () => row.remove() }),
      );
      intents.append(row);
    };
    for (const i of flow.intents ?? []) addIntent(i);
    const fallback = h("input", { id: "bot-fallback", value: flow.fallback?.content ?? "Sorry, I did not understand that.", maxLength: 16000 });
    const handoffKeywords = h("input", { id: "bot-handoff-keywords", value: (flow.handoff_keywords ?? ["agent", "human", "operator"]).join(", ") });
    const handoffAfter = h("input", { id: "bot-handoff-after", type: "number", min: "1", max: "10", value: String(flow.handoff_after_misses ?? 2) });
    const handoffMessage = h("input", { id: "bot-handoff-message", value: flow.handoff_message ?? "Connecting you to an agent…", maxLength: 1000 });
    const noAgent = h("input", { id: "bot-no-agent", value: flow.no_agent_message ?? "No agent is available right now. Leave a message and we will get back to you.", maxLength: 1000 });
    const flowFields = h(
      "div",
      { class: "bot-flow" },
      field("Greeting (sent when a conversation starts; optional)", greeting),
      field("Greeting quick buttons", greetingButtons),
      h("h4", { text: "Intents (a keyword in the visitor’s message picks the reply)" }),
      intents,
      h("button", { type: "button", class: "secondary", id: "bot-add-intent", text: "Add intent", onclick: () => addIntent() }),
      field("Fallback (no intent matched)", fallback),
      field("Hand-off keywords (comma-separated)", handoffKeywords),
      field("Hand off after this many misses", handoffAfter),
      field("Hand-off message", handoffMessage),
      field("When no agent is online", noAgent),
    );
    const url = h("input", { id: "bot-url", type: "url", value: hook.url ?? "", placeholder: "https://bot.example/parley" });
    const secret = h("input", { id: "bot-secret", type: "password", autocomplete: "new-password", placeholder: current?.kind === "webhook" ? "A secret is stored: type it (or a new one) to save" : "16 characters or more" });
    const timeout = h("input", { id: "bot-timeout", type: "number", min: "500", max: "10000", value: String(hook.timeout_ms ?? 3000) });
    const hookFields = h(
      "div",
      { class: "bot-webhook" },
      field("URL (Parley POSTs each visitor message here)", url),
      field("Signing secret (X-Parley-Signature: HMAC-SHA256)", secret, "write-only: Parley never shows it again"),
      field("Timeout (ms)", timeout),
    );
    const sync = () => {
      flowFields.hidden = kind.value !== "flow";
      hookFields.hidden = kind.value !== "webhook";
      enabledField.hidden = kind.value === "none";
    };
    const enabledField = h("div", { class: "check" }, enabled, h("label", { htmlFor: "bot-enabled", text: "Enabled" }));
    kind.addEventListener("change", sync);

    const form = h(
      "form",
      {
        id: "bot-form",
        class: "stack-form",
        onsubmit: async (event) => {
          event.preventDefault();
          status.textContent = "";
          status.className = "form-status";
          try {
            if (kind.value === "none") {
              await api("DELETE", base);
              status.textContent = "No bot on this channel.";
              return;
            }
            const body =
              kind.value === "flow"
                ? {
                    kind: "flow",
                    enabled: enabled.checked,
                    config: {
                      ...(greeting.value.trim() ? { greeting: reply(greeting.value, greetingButtons.value) } : {}),
                      intents: [...intents.querySelectorAll(".intent")].map((row) => ({
                        name: row.querySelector(".intent-name").value.trim(),
                        keywords: splitList(row.querySelector(".intent-keywords").value),
                        reply: reply(row.querySelector(".intent-reply").value, row.querySelector(".intent-buttons").value),
                      })),
                      fallback: { content: fallback.value },
                      handoff_keywords: splitList(handoffKeywords.value),
                      handoff_after_misses: Number(handoffAfter.value),
                      handoff_message: handoffMessage.value,
                      no_agent_message: noAgent.value,
                    },
                  }
                : { kind: "webhook", enabled: enabled.checked, config: { url: url.value.trim(), secret: secret.value, timeout_ms: Number(timeout.value) } };
            const saved = await api("PUT", base, body);
            secret.value = "";
            status.textContent = `Saved (${saved.kind === "flow" ? "flow bot" : "external bot"}, ${saved.enabled ? "enabled" : "disabled"}).`;
          } catch (err) {
            status.className = "form-status error";
            status.textContent = `Could not save the bot: ${err.message}`;
          }
        },
      },
      field("Bot", kind),
      enabledField,
      flowFields,
      hookFields,
      h("button", { type: "submit", text: "Save bot" }),
      status,
    );
    sync();
    return h("section", { class: "bot-editor", "aria-labelledby": "bot-title" }, h("h4", { id: "bot-title", text: "Bot" }), form);
  }

  async function pushEditor(ch) {
    const base = `/api/integrations/${encodeURIComponent(ch.id)}/push`;
    const status = h("p", { class: "form-status", role: "status" });
    const state = h("dl", { id: "push-state", class: "details-list" });
    const show = (d) => {
      const line = (p, label) => {
        const s = d?.[p];
        const text = !s?.configured
          ? "not set"
          : !s.readable
            ? "set (cannot be opened with this server's PUSH_ENCRYPTION_KEY: enter it again)"
            : p === "fcm"
              ? `set · project ${s.project_id} · ${s.client_email}`
              : `set · team ${s.team_id} · key ${s.key_id} · ${s.bundle_id} · ${s.environment}`;
        return [h("dt", { text: label }), h("dd", { "data-platform": p, text })];
      };
      setChildren(state, line("fcm", "FCM (Android)"), line("apns", "APNs (iOS)"));
    };
    try {
      show(await api("GET", base));
    } catch (err) {
      status.textContent = `Could not load the push settings: ${err.message}`;
    }
    const fcmJson = h("textarea", { id: "push-fcm", rows: 4, placeholder: '{"type":"service_account","project_id":"…","client_email":"…","private_key":"-----BEGIN PRIVATE KEY-----…"}' });
    const apnsTeam = h("input", { id: "push-apns-team", maxLength: 10, placeholder: "ABCDE12345" });
    const apnsKey = h("input", { id: "push-apns-key", maxLength: 10, placeholder: "KEY1234567" });
    const apnsBundle = h("input", { id: "push-apns-bundle", maxLength: 255, placeholder: "com.example.app" });
    const apnsEnv = h("select", { id: "push-apns-env" }, h("option", { value: "production", text: "Production" }), h("option", { value: "sandbox", text: "Sandbox" }));
    const apnsPem = h("textarea", { id: "push-apns-pem", rows: 4, placeholder: "-----BEGIN PRIVATE KEY-----…" });
    const save = async (body, done) => {
      status.textContent = "";
      status.className = "form-status";
      try {
        show(await api("PUT", base, body));
        done();
        status.textContent = "Saved. Stored encrypted; the keys are never shown again.";
      } catch (err) {
        status.className = "form-status error";
        status.textContent = `Could not save: ${err.message}`;
      }
    };
    const remove = (platform) =>
      confirmButton(`Remove ${platform === "fcm" ? "FCM" : "APNs"}`, "Confirm remove", async () => {
        try {
          show(await api("DELETE", `${base}?platform=${platform}`));
          status.textContent = "Removed.";
        } catch (err) {
          status.textContent = `Could not remove: ${err.message}`;
        }
      });
    const fcmForm = h(
      "form",
      {
        id: "push-fcm-form",
        class: "stack-form",
        onsubmit: (event) => {
          event.preventDefault();
          let account;
          try {
            account = JSON.parse(fcmJson.value);
          } catch {
            status.className = "form-status error";
            status.textContent = "Paste the service account JSON file's whole content.";
            return;
          }
          const fcm = { project_id: account?.project_id, client_email: account?.client_email, private_key: account?.private_key, ...(account?.private_key_id ? { private_key_id: account.private_key_id } : {}) };
          void save({ fcm }, () => (fcmJson.value = ""));
        },
      },
      field("FCM service account (JSON from Firebase → Project settings → Service accounts)", fcmJson),
      h("div", { class: "row" }, h("button", { type: "submit", text: "Save FCM" }), remove("fcm")),
    );
    const apnsForm = h(
      "form",
      {
        id: "push-apns-form",
        class: "stack-form",
        onsubmit: (event) => {
          event.preventDefault();
          const apns = { team_id: apnsTeam.value.trim(), key_id: apnsKey.value.trim(), bundle_id: apnsBundle.value.trim(), environment: apnsEnv.value, private_key: apnsPem.value };
          void save({ apns }, () => (apnsPem.value = ""));
        },
      },
      field("Team ID", apnsTeam),
      field("Key ID", apnsKey),
      field("Bundle ID", apnsBundle),
      field("Environment", apnsEnv),
      field("Auth key (.p8)", apnsPem),
      h("div", { class: "row" }, h("button", { type: "submit", text: "Save APNs" }), remove("apns")),
    );
    return h("section", { class: "push-editor", "aria-labelledby": "push-title" }, h("h4", { id: "push-title", text: "Push notifications" }), state, fcmForm, apnsForm, status);
  }

  const table = (caption, head, body) => h("table", { class: "admin-table" }, h("caption", { class: "visually-hidden", text: caption }), h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col", text: t })))), body);

  // ---- routing: skill-group queues, agents' skills and capacities (/api/routing) --------------
  const DAYS = [["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"], ["thu", "Thursday"], ["fri", "Friday"], ["sat", "Saturday"], ["sun", "Sunday"]];
  const queuesList = h("tbody");
  const routingAgents = h("tbody");
  const routingStatus = h("p", { class: "error", role: "alert" });
  const routingNote = h("p", { class: "form-status", id: "routing-note", role: "status" });
  let queues = [];
  let editingQueue = null;
  const qName = h("input", { id: "queue-name", required: true, maxLength: 100, placeholder: "e.g. Billing (seed 002's Subject)" });
  const qAuto = h("input", { type: "checkbox", id: "queue-auto", checked: true });
  const qAlways = h("input", { type: "checkbox", id: "queue-always", checked: true });
  const qZone = h("input", { id: "queue-timezone", maxLength: 64, value: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" });
  const qDays = DAYS.map(([key, label]) => [key, h("input", { id: `queue-hours-${key}`, placeholder: key === "sat" || key === "sun" ? "closed" : "09:00-17:00", "aria-label": `${label} hours` })]);
  const qClosed = h("input", { id: "queue-closed-message", maxLength: 1000, placeholder: "We are closed now; leave a message and we will answer tomorrow." });
  const hoursFields = h(
    "div",
    { class: "hours", hidden: true },
    field("Time zone (IANA, e.g. Europe/Berlin)", qZone),
    h("div", { class: "hours-days" }, qDays.map(([key, input]) => field(DAYS.find((d) => d[0] === key)[1], input))),
    h("p", { class: "hint", text: "Per day: ranges like 09:00-12:00, 13:00-17:00 (24 h); empty: closed." }),
    field("Message outside these hours", qClosed),
  );
  qAlways.addEventListener("change", () => (hoursFields.hidden = qAlways.checked));
  const queueSubmit = h("button", { type: "submit", text: "Add queue" });
  const queueForm = h(
    "form",
    { id: "queue-form", class: "stack-form", onsubmit: (e) => void saveQueue(e) },
    field("Name", qName),
    h("div", { class: "check" }, qAuto, h("label", { htmlFor: "queue-auto", text: "Assign automatically (to the online agent with this skill and the fewest open conversations)" })),
    h("div", { class: "check" }, qAlways, h("label", { htmlFor: "queue-always", text: "Open around the clock" })),
    hoursFields,
    h("div", { class: "row" }, queueSubmit, h("button", { type: "button", class: "link-button", text: "New queue", onclick: () => editQueue(null) })),
  );

  function editQueue(q) {
    editingQueue = q;
    queueForm.reset();
    qName.value = q?.name ?? "";
    qAuto.checked = q ? q.auto_assign : true;
    qAlways.checked = !q?.business_hours;
    hoursFields.hidden = qAlways.checked;
    qZone.value = q?.business_hours?.timezone ?? (Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC");
    for (const [key, input] of qDays) input.value = (q?.business_hours?.hours?.[key] ?? []).map(([from, to]) => `${from}-${to}`).join(", ");
    qClosed.value = q?.closed_message ?? "";
    queueSubmit.textContent = q ? "Save queue" : "Add queue";
    if (q) qName.focus();
  }

  function hoursOf() {
    if (qAlways.checked) return null;
    const hours = {};
    for (const [key, input] of qDays) {
      const ranges = input.value.split(",").map((r) => r.trim()).filter(Boolean);
      if (ranges.length === 0) continue;
      hours[key] = ranges.map((r) => {
        const m = /^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$/.exec(r);
        if (!m) throw new Error(`${DAYS.find((d) => d[0] === key)[1]}: “${r}” is not a range like 09:00-17:00`);
        return [`${m[1].padStart(2, "0")}:${m[2]}`, `${m[3].padStart(2, "0")}:${m[4]}`];
      });
    }
    return { timezone: qZone.value.trim(), hours };
  }

  async function saveQueue(event) {
    event.preventDefault();
    routingStatus.textContent = "";
    routingNote.textContent = "";
    try {
      const body = { name: qName.value, auto_assign: qAuto.checked, business_hours: hoursOf(), closed_message: qClosed.value.trim() || null };
      const saved = editingQueue ? await api("PUT", `/api/routing/queues/${encodeURIComponent(editingQueue.id)}`, body) : await api("POST", "/api/routing/queues", body);
      routingNote.textContent = `Queue “${saved.name}” saved.`;
      editQueue(null);
      await loadRouting();
    } catch (err) {
      routingStatus.textContent = `Could not save the queue: ${err.message}`;
    }
  }

  const hoursText = (bh) =>
    !bh
      ? "around the clock"
      : `${DAYS.filter(([k]) => bh.hours?.[k]?.length)
          .map(([k]) => `${k} ${bh.hours[k].map(([a, b]) => `${a}-${b}`).join(", ")}`)
          .join("; ") || "always closed"} (${bh.timezone})`;

  async function loadRouting() {
    try {
      const [qs, agents] = await Promise.all([api("GET", "/api/routing/queues"), api("GET", "/api/routing/agents")]);
      queues = qs;
      setChildren(
        queuesList,
        queues.length === 0
          ? h("tr", {}, h("td", { colspan: "4", class: "hint", text: "No queues: every conversation waits in the unassigned inbox for whoever claims it." }))
          : queues.map((q) =>
              h(
                "tr",
                { "data-queue-id": q.id },
                h("td", { text: q.name }),
                h("td", { text: q.auto_assign ? "automatic" : "claimed by hand" }),
                h("td", { text: hoursText(q.business_hours) }),
                h("td", {}, h("button", { type: "button", class: "secondary", text: "Edit", "aria-label": `Edit the queue ${q.name}`, onclick: () => editQueue(q) })),
              ),
            ),
      );
      setChildren(
        routingAgents,
        agents.map((a) => {
          const boxes = queues.map((q) => {
            const box = h("input", { type: "checkbox", id: uid("skill"), value: q.id, checked: a.skills.includes(q.id) });
            return h("span", { class: "check" }, box, h("label", { htmlFor: box.id, text: q.name }));
          });
          const capacity = h("input", { type: "number", min: "0", max: "100", class: "capacity", value: String(a.capacity), "aria-label": `Capacity of ${a.name}` });
          return h(
            "tr",
            { "data-routing-agent": a.user_id },
            h("td", { text: a.name }),
            h("td", { class: "skills" }, boxes.length ? boxes : h("span", { class: "hint", text: "no queues yet" })),
            h("td", {}, capacity),
            h(
              "td",
              {},
              h("button", {
                type: "button",
                class: "secondary",
                text: "Save",
                "aria-label": `Save the routing of ${a.name}`,
                onclick: async (event) => {
                  routingStatus.textContent = "";
                  routingNote.textContent = "";
                  const row = event.currentTarget.closest("tr");
                  try {
                    const skills = [...row.querySelectorAll(".skills input:checked")].map((b) => b.value);
                    await api("PUT", `/api/routing/agents/${encodeURIComponent(a.user_id)}`, { skills, capacity: Number(capacity.value) });
                    routingNote.textContent = `Routing of ${a.name} saved.`;
                  } catch (err) {
                    routingStatus.textContent = `Could not save ${a.name}'s routing: ${err.message}`;
                  }
                },
              }),
            ),
          );
        }),
      );
    } catch (err) {
      routingStatus.textContent = `Could not load the routing: ${err.message}`;
    }
  }

  // ---- webhooks (docs/webhooks.md) ------------------------------------------------------------
  const EVENT_TYPES = ["message.created", "conversation.created", "conversation.assigned", "conversation.resolved"];
  const hooksList = h("tbody");
  const hooksStatus = h("p", { class: "error", role: "alert" });
  const hookResult = h("div", { id: "hook-result", "aria-live": "polite" });
  const deliveries = h("section", { id: "deliveries", class: "channel-panel", hidden: true, "aria-labelledby": "deliveries-title" });
  const hookUrl = h("input", { id: "hook-url", type: "url", required: true, maxLength: 2048, placeholder: "https://example.com/parley-events" });
  const hookEvents = EVENT_TYPES.map((type) => h("input", { type: "checkbox", id: `hook-event-${type.replace(".", "-")}`, value: type }));
  const hookForm = h(
    "form",
    { id: "hook-form", class: "stack-form", onsubmit: (e) => void createHook(e) },
    field("Endpoint URL", hookUrl),
    h(
      "fieldset",
      { class: "events" },
      h("legend", { text: "Events (none ticked: all of them)" }),
      hookEvents.map((box) => h("span", { class: "check" }, box, h("label", { htmlFor: box.id, text: box.value }))),
    ),
    h("button", { type: "submit", text: "Add endpoint" }),
  );

  const showSecret = (what, secret) =>
    setChildren(
      hookResult,
      h("div", { class: "once" }, h("strong", { text: what }), " The signing secret is shown only now: verify each delivery's webhook-signature with it (Standard Webhooks)."),
      copyBox("Signing secret", secret, "hook-secret"),
    );

  async function createHook(event) {
    event.preventDefault();
    hooksStatus.textContent = "";
    try {
      const made = await api("POST", "/api/webhooks", { url: hookUrl.value.trim(), events: hookEvents.filter((b) => b.checked).map((b) => b.value) });
      hookForm.reset();
      showSecret(`Endpoint ${made.url} added.`, made.secret);
      await loadHooks();
    } catch (err) {
      hooksStatus.textContent = `Could not add the endpoint: ${err.message}`;
    }
  }

  async function loadHooks() {
    try {
      const hooks = await api("GET", "/api/webhooks");
      setChildren(
        hooksList,
        hooks.length === 0
          ? h("tr", {}, h("td", { colspan: "4", class: "hint", text: "No endpoints yet." }))
          : hooks.map((w) =>
              h(
                "tr",
                { "data-hook-id": w.id, class: w.active ? "" : "disabled" },
                h("td", {}, h("code", { text: w.url })),
                h("td", { text: w.events.length ? w.events.join(", ") : "all events" }),
                h("td", { class: "hook-state", text: w.active ? "Active" : `Disabled${w.disabled_reason ? `: ${w.disabled_reason}` : ""}` }),
                h(
                  "td",
                  { class: "actions" },
                  h("button", { type: "button", class: "secondary", text: "Deliveries", onclick: () => void openDeliveries(w) }),
                  h("button", { type: "button", class: "secondary", text: w.active ? "Disable" : "Enable", onclick: () => void hookAction(() => api("PATCH", `/api/webhooks/${encodeURIComponent(w.id)}`, { active: !w.active })) }),
                  confirmButton("Rotate secret", "Confirm rotate", () =>
                    hookAction(async () => showSecret(`New secret for ${w.url}.`, (await api("POST", `/api/webhooks/${encodeURIComponent(w.id)}/rotate-secret`)).secret)),
                  ),
                  confirmButton("Delete", "Confirm delete", () => hookAction(() => api("DELETE", `/api/webhooks/${encodeURIComponent(w.id)}`))),
                ),
              ),
            ),
      );
    } catch (err) {
      hooksStatus.textContent = `Could not load the webhooks: ${err.message}`;
    }
  }

  async function hookAction(action) {
    hooksStatus.textContent = "";
    try {
      await action();
    } catch (err) {
      hooksStatus.textContent = err.message;
    }
    await loadHooks();
  }

  async function openDeliveries(w) {
    deliveries.hidden = false;
    const base = `/api/webhooks/${encodeURIComponent(w.id)}/deliveries`;
    const status = h("p", { class: "form-status", role: "status" });
    const body = h("tbody");
    const load = async () => {
      try {
        const rows = await api("GET", `${base}?limit=50`);
        setChildren(
          body,
          rows.length === 0
            ? h("tr", {}, h("td", { colspan: "6", class: "hint", text: "No deliveries yet." }))
            : rows.map((r) =>
                h(
                  "tr",
                  { "data-delivery-id": r.id, "data-status": r.status },
                  h("td", { text: new Date(r.created_at).toLocaleString() }),
                  h("td", { text: r.event_type }),
                  h("td", { class: "delivery-status", text: r.status }),
                  h("td", { text: String(r.attempts) }),
                  h("td", { text: [r.last_status ? `HTTP ${r.last_status}` : "", r.last_error ?? ""].filter(Boolean).join(" · ") }),
                  h(
                    "td",
                    {},
                    r.status === "dead"
                      ? h("button", {
                          type: "button",
                          class: "secondary",
                          text: "Replay",
                          onclick: async () => {
                            try {
                              await api("POST", `${base}/${encodeURIComponent(r.id)}/retry`);
                              status.textContent = "Queued again.";
                            } catch (err) {
                              status.textContent = `Could not replay: ${err.message}`;
                            }
                            await load();
                          },
                        })
                      : null,
                  ),
                ),
              ),
        );
      } catch (err) {
        status.textContent = `Could not load the deliveries: ${err.message}`;
      }
    };
    setChildren(
      deliveries,
      h("h3", { id: "deliveries-title", text: `Deliveries to ${w.url}` }),
      h("div", { class: "row" }, h("button", { type: "button", class: "secondary", text: "Refresh", id: "deliveries-refresh", onclick: () => void load() }), h("button", { type: "button", class: "link-button", text: "Close", onclick: () => (deliveries.hidden = true) })),
      table("Deliveries", ["When", "Event", "Status", "Attempts", "Last answer", ""], body),
      status,
    );
    await load();
  }

  // ---- audit log (GET /api/audit: newest first, `before` = the last entry's id) ---------------
  const auditList = h("tbody", { id: "audit-list" });
  const auditStatus = h("p", { class: "error", role: "alert" });
  const auditAction = h("input", { id: "audit-action", type: "text", maxLength: 100, placeholder: "e.g. api_key.revoked or agent" });
  const auditActor = h("select", { id: "audit-actor" }, h("option", { value: "", text: "Anyone" }));
  const auditMore = h("button", { type: "button", class: "secondary", id: "audit-more", text: "Older", hidden: true, onclick: () => void loadAudit(true) });
  const auditForm = h(
    "form",
    { id: "audit-form", class: "row", onsubmit: (e) => (e.preventDefault(), void loadAudit(false)) },
    field("Action", auditAction),
    field("Who", auditActor),
    h("button", { type: "submit", class: "secondary", text: "Show" }),
  );
  let auditBefore = null;
  let auditFor = 0;

  /** "role: agent → admin", "tags: billing, done": the detail as short text, never markup. */
  const auditDetail = (detail) =>
    Object.entries(detail ?? {})
      .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") || "none" : v !== null && typeof v === "object" ? JSON.stringify(v) : String(v)}`)
      .join(" · ");

  async function loadAudit(more) {
    auditStatus.textContent = "";
    const run = ++auditFor;
    const q = new URLSearchParams({ limit: "50" });
    const action = auditAction.value.trim();
    if (action) q.set("action", action);
    if (auditActor.value) q.set("actor_id", auditActor.value);
    if (more && auditBefore) q.set("before", auditBefore);
    try {
      const page = await api("GET", `/api/audit?${q}`);
      if (run !== auditFor) return;
      const rows = page.entries.map((e) =>
        h(
          "tr",
          { "data-audit-id": e.id, "data-action": e.action },
          h("td", { text: new Date(e.at).toLocaleString() }),
          h("td", { class: "audit-actor", text: `${e.actor.name ?? e.actor.id}${e.actor.type === "agent" ? "" : ` (${e.actor.type})`}` }),
          h("td", {}, h("code", { class: "audit-action", text: e.action })),
          h("td", { class: "audit-target", text: `${e.target.type} ${e.target.id}` }),
          h("td", { class: "audit-detail", text: auditDetail(e.detail) }),
        ),
      );
      if (!more) setChildren(auditList, rows.length ? rows : h("tr", {}, h("td", { colspan: "5", class: "hint", text: "No entries." })));
      else auditList.append(...rows);
      auditBefore = page.next_before;
      auditMore.hidden = !auditBefore;
    } catch (err) {
      auditStatus.textContent = `Could not load the audit log: ${err.message}`;
    }
  }

  /** The "Who" choices: the team (names as text), keeping the current choice. */
  function auditActors() {
    const chosen = auditActor.value;
    setChildren(auditActor, h("option", { value: "", text: "Anyone" }), team.map((a) => h("option", { value: a.id, text: a.name })));
    auditActor.value = team.some((a) => a.id === chosen) ? chosen : "";
  }

  // ---- layout --------------------------------------------------------------------------------
  const jump = (id, text) => h("button", { type: "button", class: "secondary", text, onclick: () => document.getElementById(id)?.scrollIntoView({ block: "start" }) });
  setChildren(
    root,
    h(
      "nav",
      { class: "settings-nav", "aria-label": "Settings sections" },
      jump("team-admin-title", "Team"),
      jump("keys-admin-title", "API keys"),
      jump("channels-admin-title", "Channels"),
      jump("routing-admin-title", "Routing"),
      jump("hooks-admin-title", "Webhooks"),
      jump("audit-admin-title", "Audit log"),
    ),
    h(
      "section",
      { class: "admin-section", "aria-labelledby": "team-admin-title" },
      h("h2", { id: "team-admin-title", text: "Team" }),
      table("Agents", ["Name", "Email", "Role", "Status", ""], teamList),
      h("p", { class: "hint", text: "Changing a role, setting a password or disabling an agent logs them out everywhere at once; then they log in again (a disabled agent cannot)." }),
      teamNote,
      h("h3", { text: "Add an agent" }),
      agentForm,
      teamStatus,
    ),
    h(
      "section",
      { class: "admin-section", "aria-labelledby": "keys-admin-title" },
      h("h2", { id: "keys-admin-title", text: "API keys" }),
      table("API keys", ["Name", "Kind", "Key", "Created", ""], keysList),
      h("h3", { text: "Create a key" }),
      keyForm,
      keyResult,
      keysStatus,
    ),
    h(
      "section",
      { class: "admin-section", "aria-labelledby": "channels-admin-title" },
      h("h2", { id: "channels-admin-title", text: "Channels" }),
      table("Channels", ["Name", "Kind", "Allowed origins", ""], channelsList),
      h("h3", { text: "Create a channel" }),
      channelForm,
      channelResult,
      channelsStatus,
      channelPanel,
    ),
    h(
      "section",
      { class: "admin-section", "aria-labelledby": "routing-admin-title" },
      h("h2", { id: "routing-admin-title", text: "Routing" }),
      table("Queues", ["Queue", "Assignment", "Hours", ""], queuesList),
      h("h3", { text: "Add or edit a queue" }),
      queueForm,
      h("h3", { text: "Agents’ skills and capacity (open conversations at once)" }),
      table("Agents' routing", ["Agent", "Skills (queues)", "Capacity", ""], routingAgents),
      routingNote,
      routingStatus,
    ),
    h(
      "section",
      { class: "admin-section", "aria-labelledby": "hooks-admin-title" },
      h("h2", { id: "hooks-admin-title", text: "Webhooks" }),
      table("Webhook endpoints", ["URL", "Events", "State", ""], hooksList),
      h("h3", { text: "Add an endpoint" }),
      hookForm,
      hookResult,
      hooksStatus,
      deliveries,
    ),
    h(
      "section",
      { class: "admin-section", "aria-labelledby": "audit-admin-title" },
      h("h2", { id: "audit-admin-title", text: "Audit log" }),
      h("p", { class: "hint", text: "Who changed what: keys, agents, channels, webhooks, routing, conversations handed on or resolved, logins. Never a password or secret." }),
      auditForm,
      table("Audit log", ["When", "Who", "Action", "Target", "Detail"], auditList),
      auditMore,
      auditStatus,
    ),
  );

  return {
    async load() {
      panelFor += 1;
      channelPanel.hidden = true;
      deliveries.hidden = true;
      auditBefore = null;
      await Promise.all([loadTeam().then(auditActors), loadKeys(), loadChannels(), loadHooks(), loadRouting(), loadAudit(false)]);
    },
    /** Presence changed: update the team's status column in place (a form open in a row stays). */
    presenceChanged() {
      for (const a of team) {
        const cell = teamList.querySelector(`tr[data-agent-id="${CSS.escape(a.id)}"] .agent-status`);
        if (cell) cell.textContent = a.disabled ? "Disabled" : opts.isOnline(a.id) ? "Online" : "Offline";
      }
    },
    /** Logged out: forget everything shown (a key shown once must not outlive the session). */
    clear() {
      panelFor += 1;
      team = [];
      channels = [];
      auditFor += 1;
      auditBefore = null;
      auditMore.hidden = true;
      for (const el of [teamList, keysList, channelsList, keyResult, channelResult, channelPanel, hooksList, hookResult, deliveries, queuesList, routingAgents, auditList]) el.replaceChildren();
      for (const el of [teamStatus, teamNote, keysStatus, channelsStatus, hooksStatus, routingStatus, routingNote, auditStatus]) el.textContent = "";
      for (const form of [agentForm, keyForm, channelForm, hookForm, auditForm]) form.reset();
      setChildren(auditActor, h("option", { value: "", text: "Anyone" }));
      editQueue(null);
      deliveries.hidden = true;
      webOnly.hidden = false;
      channelPanel.hidden = true;
    },
  };
}

function reply(text, buttonsCsv) {
  const labels = splitList(buttonsCsv ?? "");
  if (labels.length === 0) return { content: text };
  return { content: text, content_type: "quick_button", rich_media: { buttons: labels.map((label) => ({ label, value: label })) } };
}

function buttonsOf(message) {
  const buttons = message?.content_type === "quick_button" ? message.rich_media?.buttons : null;
  return Array.isArray(buttons) ? buttons.map((b) => b.label).join(", ") : "";
}

const roleLabel = (role) => (role === "owner" ? "Owner" : role === "admin" ? "Admin" : "Agent");
const kindLabel = (kind) => ({ webchat: "Website", mobile_sdk: "Mobile app", chat_api: "Chat API", connector: "Connector" })[kind] ?? kind;
