/**
 * Safe DOM building for Parley's pages. Everything that came from the network (message text,
 * names, tags, URLs) goes through textContent or a checked attribute: no innerHTML anywhere.
 */

/** The URL as a string when it is an absolute http(s) URL, else null. */
export function httpUrl(value) {
  if (typeof value !== "string") return null;
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * Creates an element. `props`: `class`, `text`, `on<event>` functions, boolean/DOM properties
 * listed in PROPS, anything else as an attribute. `href`/`src` are refused unless http(s).
 */
const PROPS = new Set(["disabled", "checked", "value", "hidden", "type", "name", "id", "htmlFor", "tabIndex", "required", "placeholder", "autocomplete", "maxLength", "rows"]);

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === "href" || key === "src") {
      const safe = httpUrl(value);
      if (safe) el.setAttribute(key, safe);
    } else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

/** Replaces an element's children. */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** Text with http(s) URLs turned into links (opened in a new tab, no referrer, no opener). */
export function linkify(text) {
  const out = document.createDocumentFragment();
  const re = /\bhttps?:\/\/[^\s<>"']+/gi;
  let last = 0;
  for (const match of text.matchAll(re)) {
    // Trailing punctuation is usually the sentence's, not the URL's.
    const raw = match[0].replace(/[.,;:!?)\]]+$/, "");
    const safe = httpUrl(raw);
    if (!safe) continue;
    out.append(text.slice(last, match.index));
    out.append(h("a", { href: safe, target: "_blank", rel: "noopener noreferrer nofollow", text: raw }));
    last = match.index + raw.length;
  }
  out.append(text.slice(last));
  return out;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "short" });

export function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toDateString() === new Date().toDateString() ? timeFormat.format(d) : dateTimeFormat.format(d);
}

/**
 * Renders one message's body: its text plus its rich media.
 * `onChoose(value)`: called when a quick button, dropdown option or carousel button is chosen;
 * when null (the agent's view), choices are shown as inert labels.
 */
export function renderBody(message, onChoose) {
  const body = h("div", { class: "msg-body" });
  const media = message.rich_media && typeof message.rich_media === "object" ? message.rich_media : null;
  const text = typeof message.content === "string" ? message.content : "";
  // An image's text is its caption, under it; a file's is usually its name, shown on the card.
  const captioned = media && (message.content_type === "image" || message.content_type === "file");
  if (text && !captioned) body.append(h("p", { class: "msg-text" }, linkify(text)));
  if (!media) {
    if (text && captioned) body.append(h("p", { class: "msg-text" }, linkify(text)));
    return body;
  }
  switch (message.content_type) {
    case "image": {
      const src = httpUrl(media.url);
      const alt = typeof media.alt === "string" ? media.alt : "";
      body.append(
        h(
          "figure",
          { class: "msg-figure" },
          src
            ? h("a", { href: src, target: "_blank", rel: "noopener noreferrer nofollow", title: "Open the image in a new tab" }, h("img", { class: "msg-image", src, alt: alt || text || "image", loading: "lazy", referrerpolicy: "no-referrer" }))
            : h("p", { class: "msg-note", text: "[image with an unsupported address]" }),
          text ? h("figcaption", { class: "msg-text" }, linkify(text)) : null,
        ),
      );
      break;
    }
    case "file": {
      const href = httpUrl(media.url);
      const name = typeof media.filename === "string" && media.filename ? media.filename : text || "file";
      const details = [typeof media.mime_type === "string" ? media.mime_type : "", fileSize(media.size)].filter(Boolean).join(" · ");
      body.append(
        h(
          href ? "a" : "div",
          { class: "file-card", href, target: href ? "_blank" : null, rel: href ? "noopener noreferrer nofollow" : null, download: href ? "" : null },
          h("span", { class: "file-icon", "aria-hidden": "true", text: fileBadge(name) }),
          h("span", { class: "file-info" }, h("span", { class: "file-name", text: name }), details ? h("span", { class: "file-details", text: details }) : null),
        ),
      );
      if (text && text !== name) body.append(h("p", { class: "msg-text" }, linkify(text)));
      if (!href) body.append(h("p", { class: "msg-note", text: "[file with an unsupported address]" }));
      break;
    }
    case "quick_button":
      body.append(choices(media.buttons, onChoose));
      break;
    case "dropdown":
      body.append(dropdown(media, onChoose));
      break;
    case "carousel":
      if (Array.isArray(media.cards)) {
        body.append(
          h(
            "div",
            { class: "carousel", role: "list" },
            media.cards.map((card) => {
              const img = httpUrl(card?.image_url);
              return h(
                "div",
                { class: "card", role: "listitem" },
                img ? h("img", { src: img, alt: "", loading: "lazy", referrerpolicy: "no-referrer" }) : null,
                h("strong", { text: String(card?.title ?? "") }),
                card?.subtitle ? h("p", { text: String(card.subtitle) }) : null,
                choices(card?.buttons, onChoose),
              );
            }),
          ),
        );
      }
      break;
  }
  return body;
}

/** A file's extension as a short badge ("PDF"), or "FILE". */
function fileBadge(name) {
  const ext = /\.([a-z0-9]{1,4})$/i.exec(name)?.[1];
  return ext ? ext.toUpperCase() : "FILE";
}

/** "200 KB" for a byte count, "" when it is not one. */
export function fileSize(bytes) {
  if (typeof bytes !== "number" || !Number.isFinite(bytes) || bytes < 0) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function choices(buttons, onChoose) {
  const list = h("div", { class: "choices" });
  if (!Array.isArray(buttons)) return list;
  for (const b of buttons) {
    const label = String(b?.label ?? "");
    const value = String(b?.value ?? label);
    list.append(
      onChoose
        ? h("button", {
            type: "button",
            class: "choice",
            text: label,
            onclick: (event) => {
              // One answer per question: the group stays visible, the chosen one marked.
              for (const b of list.querySelectorAll("button")) b.disabled = true;
              event.currentTarget.classList.add("chosen");
              onChoose(value);
            },
          })
        : h("span", { class: "choice inert", text: label, title: `sends “${value}”` }),
    );
  }
  return list;
}

let dropdownIds = 0;
function dropdown(media, onChoose) {
  const options = Array.isArray(media.options) ? media.options : [];
  const id = `dropdown-${++dropdownIds}`;
  const placeholder = typeof media.placeholder === "string" && media.placeholder ? media.placeholder : "Choose…";
  const select = h(
    "select",
    { id, disabled: !onChoose },
    h("option", { value: "", text: placeholder, disabled: true, selected: true }),
    options.map((o) => h("option", { value: String(o?.value ?? o?.label ?? ""), text: String(o?.label ?? "") })),
  );
  select.selectedIndex = 0;
  const wrap = h("div", { class: "dropdown" }, h("label", { class: "visually-hidden", htmlFor: id, text: placeholder }), select);
  if (onChoose) {
    wrap.append(
      h("button", {
        type: "button",
        class: "choice",
        text: "Send",
        onclick: () => {
          if (select.value) onChoose(select.value);
          else select.focus();
        },
      }),
    );
  }
  return wrap;
}

/**
 * Keeps a message list element in sync with `items` (each `{ key, render }`), in order, without
 * re-creating nodes that already exist: assistive tech announces only what is new. `cache` is a
 * Map the caller keeps per list. Keeps the view pinned to the bottom if it was there.
 */
export function syncList(list, cache, items) {
  const scroller = list.closest("[data-scroll]") ?? list;
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  const keep = new Set();
  let cursor = list.firstChild;
  for (const item of items) {
    keep.add(item.key);
    let node = cache.get(item.key);
    if (!node) {
      node = item.render();
      cache.set(item.key, node);
    }
    if (node === cursor) cursor = cursor.nextSibling;
    else list.insertBefore(node, cursor);
  }
  for (const [key, node] of cache) {
    if (!keep.has(key)) {
      node.remove();
      cache.delete(key);
    }
  }
  if (atBottom) scroller.scrollTop = scroller.scrollHeight;
}

/** A sessionStorage/localStorage wrapper that survives disabled storage (private modes). */
export function storage(kind = "localStorage") {
  const memory = new Map();
  let store = null;
  try {
    store = window[kind];
    store.setItem("parley_probe", "1");
    store.removeItem("parley_probe");
  } catch {
    store = null;
  }
  return {
    persistent: store !== null,
    get: (k) => (store ? store.getItem(k) : (memory.get(k) ?? null)),
    set: (k, v) => (store ? store.setItem(k, v) : memory.set(k, v)),
    remove: (k) => (store ? store.removeItem(k) : memory.delete(k)),
  };
}

/** One stored message as a list item. `who`: the label shown; `mine`: right-aligned. */
export function messageItem(message, { who, mine, onChoose }) {
  const system = message.sender_type === "system";
  return h(
    "li",
    { class: `msg${mine ? " mine" : ""}${system ? " system" : ""}${message.private ? " private" : ""}`, "data-seq": message.seq },
    h(
      "div",
      { class: "msg-meta" },
      h("span", { class: "who", text: who }),
      h("time", { datetime: message.created_at, text: formatTime(message.created_at) }),
      message.private ? h("span", { class: "private-label", text: "Private note: the visitor does not see this" }) : null,
    ),
    renderBody(message, onChoose),
  );
}

/** syncList key of an outbox entry: changes whenever its rendering would. */
export const pendingKey = (item, connected) => `p:${item.client_msg_id}:${item.error ? "failed" : item.status ? `s:${item.status}` : item.acked ? "sent" : !connected ? "waiting" : item.note ? "retrying" : "sending"}`;

/** One outbox entry (not yet acknowledged by the server). `item.status`: a state of its own ("Uploading…"). */
export function pendingItem(item, { connected, onDiscard }) {
  const failed = Boolean(item.error);
  const state = failed
    ? `Not sent: ${item.error}`
    : item.status
      ? item.status
      : item.acked
      ? "Sent"
      : !connected
        ? "Waiting for the connection to send…"
        : item.note
          ? `Retrying (${item.note})…`
          : "Sending…";
  return h(
    "li",
    { class: `msg mine pending${failed ? " failed" : ""}${item.private ? " private" : ""}` },
    h("div", { class: "msg-meta" }, h("span", { text: item.private ? "You (private note)" : "You" }), h("span", { class: "state", text: state })),
    renderBody({ content: item.content, content_type: item.content_type, rich_media: item.rich_media }, null),
    failed ? h("button", { type: "button", class: "link-button", text: "Dismiss", onclick: () => onDiscard(item.client_msg_id) }) : null,
  );
}
