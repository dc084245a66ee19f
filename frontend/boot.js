// The page before the wasm has arrived (index.html loads this from a hashed file, as the
// CSP wants; it runs in <head>, before the first paint):
// - a visitor with a saved session sees the chat's frame, not the prompt, since the app
//   goes straight into the room (the `signed-in` class on <html>, see style.css);
// - everyone else gets index.html's static prompt working at once: the tabs switch
//   between guest, sign in and register, the last name is filled in, and a submit is held
//   (`data-submitted` on the form, the button off) until the wasm takes the prompt over
//   with what was typed and sends it (`chatBootTake`, `chatBootFocus` below, called by
//   frontend/src/early_prompt.rs);
// - once the page has loaded, the service worker (frontend/sw.js) is installed, then so its
//   install does not compete with the first visit's downloads.
(() => {
  // The keys frontend/src/session.rs keeps the session under.
  const stored = (key) => {
    try {
      return localStorage.getItem(key) || "";
    } catch {
      return ""; // storage refused (private mode): no session, as for the app
    }
  };
  if (stored("chat.token") && stored("chat.name")) {
    document.documentElement.classList.add("signed-in");
  }

  const form = () => document.getElementById("boot-prompt");

  /** Shows `mode`'s tab, fields, button text and hint (the texts are on the elements). */
  const show = (f, mode) => {
    f.dataset.mode = mode;
    for (const tab of f.querySelectorAll("[role=tab]")) {
      const current = tab.dataset.mode === mode;
      tab.classList.toggle("current", current);
      tab.setAttribute("aria-selected", String(current));
    }
    for (const el of f.querySelectorAll(".password")) el.hidden = mode === "guest";
    f.querySelector("#name-input").autocomplete = mode === "guest" ? "nickname" : "username";
    f.querySelector("#password-input").autocomplete =
      mode === "register" ? "new-password" : "current-password";
    for (const el of f.querySelectorAll("[data-guest]")) el.textContent = el.dataset[camel(mode)];
  };
  const camel = (mode) => mode.replace(/-(.)/g, (_, c) => c.toUpperCase());

  document.addEventListener("DOMContentLoaded", () => {
    const f = form();
    if (!f) return;
    // As the app's prompt would come back: the last name, on sign in for an account's.
    f.querySelector("#name-input").value = stored("chat.name");
    show(f, stored("chat.kind") === "account" ? "sign-in" : "guest");
    f.addEventListener("click", (e) => {
      const tab = e.target.closest("[role=tab]");
      if (tab && !f.dataset.submitted) show(f, tab.dataset.mode);
    });
    f.addEventListener("submit", (e) => {
      e.preventDefault();
      f.dataset.submitted = "1";
      // The one button with texts per mode (trunk's minifier drops the default type=submit).
      f.querySelector("button[data-guest]").disabled = true;
    });
  });

  // The app's side of the takeover (frontend/src/early_prompt.rs): what the prompt holds,
  // as "mode\nsubmitted\nname\npassword" (text inputs hold no line breaks), with the static
  // page removed; then the focus and caret back in the app's field of the same id.
  let focus = null;
  window.chatBootTake = () => {
    const boot = document.getElementById("boot");
    const f = form();
    if (!boot || !f) return undefined;
    const active = document.activeElement;
    if (active && active.id && f.contains(active)) {
      focus = [active.id, active.selectionStart, active.selectionEnd];
    }
    // Joined with a line feed written as a char code: trunk's JS minifier turns the escape
    // "\n" into a backslash and an n.
    const held = [
      f.dataset.mode,
      f.dataset.submitted ? "1" : "",
      f.querySelector("#name-input").value,
      f.querySelector("#password-input").value,
    ].join(String.fromCharCode(10));
    boot.remove();
    return held;
  };
  window.chatBootFocus = () => {
    const field = focus && document.getElementById(focus[0]);
    if (!field) return;
    field.focus();
    if (focus[1] !== null) field.setSelectionRange(focus[1], focus[2]);
  };

  if ("serviceWorker" in navigator) {
    addEventListener("load", () => {
      navigator.serviceWorker.register("/sw.js").catch((e) => console.warn("service worker:", e));
    });
  }
})();
