/* The nav's Approvals badge: read again every few seconds while the page is in view, and at
   once after a decision made on this page (window.Nav.refresh). */
(function () {
  "use strict";
  const badge = document.querySelector("[data-pending-count]");
  if (!badge) return;
  const POLL_MS = 10000;

  async function refresh() {
    try {
      const response = await fetch("/approvals/pending-count/", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const { pending } = await response.json();
      badge.textContent = String(pending);
      badge.hidden = pending === 0;
    } catch (err) {
      // Offline for a moment: the next poll tries again.
    }
  }

  window.Nav = { refresh };
  setInterval(() => { if (document.visibilityState === "visible") refresh(); }, POLL_MS);
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") refresh(); });
})();
