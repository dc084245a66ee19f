// The service worker (frontend/service-worker.mjs writes it into dist/ as sw.js, with the
// release's RELEASE line on top). It keeps one release's files, so a returning visitor on a
// bad network gets the page from the cache at once:
// - trunk's content-hashed files (wasm, glue, loader, CSS) come from the cache, never
//   changing under their names;
// - the page itself (index.html, any navigation) goes to the network first, so a new
//   release is picked up on the next visit, and the cached copy answers when the network
//   fails or takes longer than NAV_TIMEOUT_MS;
// - everything else, the grpc-web API above all, is not touched: never cached, never
//   answered from a cache.
// The cache is named after the release's asset names (the hashes), so a new release
// installs into a new cache and deletes the older ones when it takes over.
const CACHE = `chat-${RELEASE.version}`;
const HASHED = new Set(RELEASE.assets);
const NAV_TIMEOUT_MS = 3000;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(["/", ...RELEASE.assets]))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) =>
        Promise.all(
          names.filter((n) => n.startsWith("chat-") && n !== CACHE).map((n) => caches.delete(n)),
        ),
      )
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (HASHED.has(url.pathname)) {
    event.respondWith(
      caches.match(url.pathname, { cacheName: CACHE }).then((hit) => hit || fetch(request)),
    );
  } else if (request.mode === "navigate" || url.pathname === "/index.html") {
    event.respondWith(page(request));
  }
});

/** The page from the network, kept as the cached copy; the cached copy when that fails. */
async function page(request) {
  const fromNetwork = fetch(request).then(async (response) => {
    if (response.ok) {
      // A full disk only costs the offline copy, never the page.
      await caches
        .open(CACHE)
        .then((cache) => cache.put("/", response.clone()))
        .catch(() => {});
    }
    return response;
  });
  // Still settling after the cached copy has answered: nobody awaits it any more.
  fromNetwork.catch(() => {});
  const cached = () => caches.match("/", { cacheName: CACHE });
  const late = new Promise((resolve) => setTimeout(resolve, NAV_TIMEOUT_MS));
  try {
    const first = await Promise.race([fromNetwork, late.then(cached)]);
    return first || (await fromNetwork);
  } catch {
    return (await cached()) || Response.error();
  }
}
