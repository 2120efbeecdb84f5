/* The approvals inbox: pending gates with their forms; polled so decisions made elsewhere vanish. */
(function () {
  "use strict";
  const { el } = window.Api;
  const inbox = document.getElementById("inbox");
  const CAN_DECIDE = inbox.dataset.canDecide === "true";
  const POLL_MS = 2000;
  const cards = new Map();

  function card(item) {
    const fields = (item.fields || []).map(GateForm.field);
    const comment = el("input", { name: "comment", placeholder: "Comment (optional)" });
    const error = el("div", { class: "field-error", "data-card-error": "" });
    const decide = async (decision) => {
      error.textContent = "";
      fields.forEach((f) => { f.error.textContent = ""; });
      const body = { comment: comment.value };
      if (decision === "approve" && fields.length) body.response = GateForm.response(fields);
      try {
        await Api.post(`/api/v1/approvals/${item.id}/${decision}`, body);
        remove(item.id, decision === "approve" ? "Approved" : "Denied");
        if (window.Nav) window.Nav.refresh();
      } catch (err) {
        const problems = (err.body && err.body.fields) || {};
        let shown = 0;
        for (const f of fields) {
          const key = Object.keys(problems).find((k) => k === f.name || k.endsWith(`.${f.name}`));
          if (key) { f.error.textContent = problems[key].join(", "); shown += 1; }
        }
        // Field problems sit under their fields; the line below says what is left (a 403 or a
        // 409 names who may decide, or what became of the item).
        error.textContent = shown ? "Check the fields marked above." : err.message;
        if (err.status === 409) setTimeout(() => remove(item.id, "Decided elsewhere"), 1200);
      }
    };
    return el("article", { class: "card approval", "data-approval-id": item.id },
      el("div", { class: "row" },
        el("span", { class: "status waiting" }, item.kind === "input" ? "input needed" : item.kind === "tool_call" ? "tool call" : "approval"),
        el("strong", {}, item.orchestration_name || "Run"), el("span", { class: "muted mono" }, item.step_id),
        el("span", { class: "spacer" }),
        el("a", { href: `/runs/${item.run_id}/` }, "Open run →")),
      el("p", { class: "gate-prompt" }, item.prompt || "Approve this step?"),
      item.kind === "tool_call" ? GateForm.toolCalls(item) : null,
      showDeciders(el("p", { class: "muted", "data-deciders": "" }), item.deciders),
      item.agent_context ? el("details", { open: true }, el("summary", {}, "Agent context"), el("pre", {}, item.agent_context)) : null,
      ...fields.map((f) => f.node),
      comment,
      error,
      item.expires_at ? el("p", { class: "muted" }, `Expires ${new Date(item.expires_at).toLocaleString()}`) : null,
      CAN_DECIDE ? el("div", { class: "row" },
        el("button", { type: "button", class: "ok", "data-action": "approve", onclick: () => decide("approve") }, fields.length ? "Submit" : "Approve"),
        el("button", { type: "button", class: "danger", "data-action": "deny", onclick: () => decide("deny") }, "Deny")) : el("p", { class: "muted" }, "Your role can read these but not decide."));
  }

  /* Who may decide; kept current by the poll, since an escalation widens it while the page is open. */
  function showDeciders(node, deciders) {
    const list = deciders || [];
    node.hidden = !list.length;
    node.textContent = list.length ? `Only ${list.join(", ")} may decide.` : "";
    return node;
  }

  function remove(id, label) {
    const node = cards.get(id);
    if (!node) return;
    cards.delete(id);
    node.classList.add("decided");
    Api.fill(node, el("p", { class: "muted" }, label));
    setTimeout(() => { node.remove(); if (!cards.size) empty(); }, 800);
  }

  function empty() {
    if (!cards.size && !inbox.querySelector(".approval")) Api.fill(inbox, el("div", { class: "card empty", id: "inbox-empty" }, "Nothing waiting for a decision."));
  }

  async function poll() {
    try {
      const { data } = await Api.get("/api/v1/approvals?pending=true&limit=100");
      const pending = new Set(data.items.map((i) => i.id));
      for (const id of [...cards.keys()]) if (!pending.has(id)) remove(id, "Decided elsewhere");
      const empties = inbox.querySelector("#inbox-empty, p.muted");
      if (data.items.length && empties && !cards.size) Api.fill(inbox);
      for (const item of data.items) {
        if (cards.has(item.id)) {
          const hint = cards.get(item.id).querySelector("[data-deciders]");
          if (hint) showDeciders(hint, item.deciders);
          continue;
        }
        const node = card(item);
        cards.set(item.id, node);
        inbox.append(node);
      }
      empty();
      document.getElementById("inbox-live").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      document.getElementById("inbox-live").textContent = `Could not refresh: ${err.message}`;
    }
    setTimeout(poll, POLL_MS);
  }
  poll();
})();
