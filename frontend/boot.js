// Runs before the wasm (index.html loads it from a hashed file, as the CSP wants): installs
// the service worker (frontend/sw.js), once the page has loaded so its install does not
// compete with the first visit's downloads.
if ("serviceWorker" in navigator) {
  addEventListener("load", () => {
    navigator.serviceWorker.register("/sw.js").catch((e) => console.warn("service worker:", e));
  });
}
