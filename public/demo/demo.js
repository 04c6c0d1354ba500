/**
 * The demo host page: Parley's real widget, embedded with seed 000's snippet
 * (`<script src="/widget.js" data-key="pk_…">`), the public key taken from this page's `?key=`.
 * `npm start` prints the address. Without a key the page says how to get one.
 */
const $ = (id) => document.getElementById(id);
const key = new URLSearchParams(location.search).get("key")?.trim() ?? "";

/** Text and <code> parts, never markup. */
function say(el, ...parts) {
  const p = document.createElement("p");
  for (const part of parts) {
    if (typeof part === "string") p.append(part);
    else {
      const code = document.createElement("code");
      code.textContent = part.code;
      p.append(code);
    }
  }
  el.append(p);
  el.hidden = false;
}

if (!/^pk_[\w-]+$/.test(key)) {
  say(
    $("notice"),
    "This demo page needs a public key in its address. Start Parley with ",
    { code: "npm start" },
    " and open the demo URL it prints (it ends in ",
    { code: "?key=pk_…" },
    ").",
  );
} else {
  const src = `${location.origin}/widget.js`;
  $("snippet").textContent = `<script src="${src}" data-key="${key}"></script>`;
  $("about").hidden = false;
  // Seed 000's snippet, inserted at run time (as its React/Next.js variant does).
  const script = document.createElement("script");
  script.src = src;
  script.setAttribute("data-key", key);
  script.async = true;
  document.body.append(script);

  $("forget").addEventListener("click", () => {
    // The loader keeps the visitor's id under cw_sid_{key}; the widget remembers it was opened.
    try {
      for (const name of [`cw_sid_${key}`, `parley_active_${key}`, `parley_email_${key}`]) localStorage.removeItem(name);
    } catch {
      // storage blocked: every visit is a new visitor anyway
    }
    location.reload();
  });
}
