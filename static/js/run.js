/* The live run view: statuses from the websocket's events, details from the API. */
(function () {
  "use strict";
  const { el, pretty, duration } = window.Api;
  const root = document.getElementById("run");
  const RUN = root.dataset.runId;
  const CAN_EDIT = root.dataset.canEdit === "true";
  const TERMINAL = ["succeeded", "failed", "cancelled"];
  const EVENT_STATUS = {
    step_start: "running", step_complete: "succeeded", step_failed: "failed", step_retry: "pending",
    step_skipped: "skipped", human_input_required: "waiting", step_cancelled: "cancelled",
  };

  const definition = JSON.parse(document.getElementById("graph-data").textContent);
  const graph = window.Graph.create(document.getElementById("canvas"), { editable: false });
  const TRACE_TYPES = ["step_start", "agent_turn", "tool_execution", "tool_result"];
  // An unknown price is shown as such, never as $0: a step's cost is null, a run's is its priced part.
  const cost = (usd, unpriced) => {
    if (usd === null || usd === undefined) return unpriced ? "unpriced" : "–";
    return `$${Number(usd).toFixed(4)}${unpriced ? " + unpriced" : ""}`;
  };
  const state = { run: null, steps: {}, stepEvents: {}, live: {}, lastSeq: 0, selected: null, pinned: false, rendered: { steps: {}, output: "" }, socket: null, retry: 500, connected: false, dropped: false };

  graph.setGraph(definition.nodes.map((n) => ({ ...n, status: "pending" })), definition.edges.map((e) => ({ ...e, id: e.id || `${e.source}->${e.target}` })), false);
  graph.cy.on("tap", "node", (evt) => selectStep(evt.target.id()));
  for (const card of graph.cards.values()) card.addEventListener("click", () => selectStep(card.dataset.nodeId));

  function setNodeStatus(id, status) {
    const node = definition.nodes.find((n) => n.id === id);
    if (!node) return;
    const card = graph.card(id);
    card.dataset.status = status;
    card.querySelector(".gstate").textContent = status;
  }

  // A run or step that has not ended shows how long it has been going, kept current each
  // second (a waiting step too: its duration spans the wait); an ended one, its duration.
  function elapsed(node, ms, startedAt) {
    delete node.dataset.since;
    if (ms === null && startedAt) {
      node.dataset.since = startedAt;
      node.textContent = soFar(startedAt);
    } else {
      node.textContent = duration(ms);
    }
    return node;
  }
  function soFar(since) {
    const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(since)) / 1000));
    return `${seconds < 60 ? `${seconds} s` : duration(seconds * 1000)} so far`;
  }
  setInterval(() => {
    for (const node of document.querySelectorAll("[data-since]")) node.textContent = soFar(node.dataset.since);
  }, 1000);

  function setRunStatus(status) {
    const badge = document.getElementById("run-status");
    badge.className = `status ${status}`;
    badge.dataset.status = status;
    badge.textContent = status;
    const cancel = document.getElementById("cancel");
    if (cancel) cancel.hidden = TERMINAL.includes(status);
    showConnection();
  }

  // "live" while the run can still change; a finished run's page is just up to date (the socket
  // stays open for what may still come: a refine, a share).
  function showConnection() {
    const live = document.getElementById("live");
    if (!state.connected) {
      live.textContent = state.dropped ? "reconnecting…" : "connecting…";
      live.className = "live";
      return;
    }
    const finished = TERMINAL.includes(document.getElementById("run-status").dataset.status);
    live.textContent = finished ? "up to date" : "live";
    live.className = finished ? "live" : "live on";
  }

  // --- the run detail from the API ------------------------------------------------------------
  // A read that fails (the server restarting, a dropped connection) is tried again: the page
  // follows a refine by reading until it ends, and one lost read must not stop it for good.
  let refreshTimer = null;
  function refreshSoon(wait = 150) {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      refresh().catch(() => refreshSoon(2000));
    }, wait);
  }

  // Reads can overlap (events keep coming while one is in flight) and answer out of order: an
  // older answer arriving last would paint stale statuses that no later event corrects.
  let latestRead = 0;
  async function refresh() {
    const read = ++latestRead;
    const [{ data: run }, { data: rendered }] = await Promise.all([
      Api.get(`/api/v1/runs/${RUN}`),
      Api.get(`/runs/${RUN}/outputs/`),
    ]);
    if (read !== latestRead) return;
    state.run = run;
    state.rendered = rendered;
    for (const step of run.steps) {
      state.steps[step.step_id] = step;
      setNodeStatus(step.step_id, step.status);
    }
    setRunStatus(run.status);
    document.getElementById("progress").textContent = `${run.steps_completed} / ${run.steps_total} steps`;
    elapsed(document.getElementById("duration"), run.duration_ms, run.started_at);
    document.getElementById("tokens").textContent = `${run.tokens.input} in · ${run.tokens.output} out`;
    document.getElementById("cost").textContent = cost(run.cost_usd, run.unpriced);
    const error = document.getElementById("run-error");
    error.hidden = !run.error;
    if (run.error) error.textContent = `${run.error.code}: ${run.error.detail}${run.error.step_id ? ` (step ${run.error.step_id})` : ""}`;
    const output = document.getElementById("output");
    if (run.output !== null && run.output !== undefined) output.innerHTML = rendered.output;
    else if (TERMINAL.includes(run.status)) Api.fill(output, el("span", { class: "muted" }, `No output: the run ${run.status}.`));
    drawGate(run.human_input_required);
    const refine = document.getElementById("refine");
    if (refine) refine.hidden = run.status !== "succeeded" || run.refine_status === "refining";
    document.getElementById("refine-status").textContent =
      run.refine_status === "refining" ? "Refining…" : run.refine_status === "failed" ? `Refine failed: ${run.refine_error || ""}` : "";
    if (run.refine_status === "refining") refreshSoon(1000);
    const shown = state.pinned ? state.selected : firstToShow(run) || state.selected;
    if (shown) selectStep(shown, { byUser: state.pinned });
  }

  // Until someone picks a step, the panel follows the one most worth reading: the step waiting
  // for people, else the one that failed, else the one running, else the last that ran.
  function firstToShow(run) {
    for (const status of ["waiting", "failed", "running"]) {
      const step = run.steps.find((s) => s.status === status);
      if (step) return step.step_id;
    }
    const ran = run.steps.filter((s) => s.status === "succeeded");
    return ran.length ? ran[ran.length - 1].step_id : null;
  }

  // --- a pending approval or input form, answered here ------------------------------------------
  function drawGate(gate) {
    const box = document.getElementById("gate");
    if (!gate) { box.hidden = true; Api.fill(box); return; }
    if (box.dataset.approvalId === gate.approval_id && !box.hidden) return;
    box.dataset.approvalId = gate.approval_id;
    box.hidden = false;
    const comment = el("input", { name: "comment", placeholder: "Comment (optional)" });
    const error = el("div", { class: "field-error" });
    const fields = (gate.fields || []).map(GateForm.field);
    const decide = async (decision) => {
      error.textContent = "";
      try {
        if (fields.length && decision === "approve") {
          const response = GateForm.response(fields);
          await Api.post(`/api/v1/approvals/${gate.approval_id}/approve`, { comment: comment.value, response });
        } else {
          await Api.post(`/api/v1/approvals/${gate.approval_id}/${decision}`, { comment: comment.value });
        }
        box.hidden = true;
        refreshSoon();
        if (window.Nav) window.Nav.refresh();
      } catch (err) {
        const detail = Api.fieldList(err);
        error.textContent = detail ? `${err.message} ${detail}` : err.message;
      }
    };
    // What is asked on the left, the answer on the right: the graph stays in view below.
    Api.fill(box,
      el("div", { class: "gate-about" },
        el("div", { class: "row" }, el("span", { class: "status waiting" }, "waiting for you"), el("strong", {}, `Step ${gate.step_id}`)),
        el("p", { class: "gate-prompt" }, gate.prompt || "Approve this step?"),
        gate.kind === "tool_call" ? GateForm.toolCalls(gate) : null,
        gate.agent_context ? el("details", { open: true }, el("summary", {}, "Context"), el("pre", {}, gate.agent_context)) : null),
      el("div", { class: "gate-form" },
        ...fields.map((f) => f.node),
        comment,
        error,
        CAN_EDIT ? el("div", { class: "row" },
          el("button", { type: "button", class: "ok", id: "approve", onclick: () => decide("approve") }, fields.length ? "Submit" : "Approve"),
          el("button", { type: "button", class: "danger", id: "deny", onclick: () => decide("deny") }, "Deny")) : el("p", { class: "muted" }, "Your role cannot decide.")),
    );
  }

  // --- step detail ---------------------------------------------------------------------------------
  function selectStep(id, { byUser = true } = {}) {
    state.selected = id;
    state.pinned = byUser;
    graph.cy.nodes().unselect();
    graph.cy.getElementById(id).select();
    graph.place();
    drawStep(id);
  }

  // The panel is rebuilt only when the step or its rendered output changed: a read that brought
  // nothing new (one follows every burst of events, and the run's end) would otherwise swallow a
  // click on its links, close an opened "Full input" and drop a selection. When the same step
  // changed (it ran on, it ended), a "Full input" the reader opened stays open. The conversation
  // in it follows its events on its own (redrawConversation), so events are not part of it.
  let drawn = null;
  let drawnId = null;
  function drawStep(id) {
    const panel = document.getElementById("step-panel");
    const node = definition.nodes.find((n) => n.id === id);
    const step = state.steps[id];
    if (!node) return;
    const showing = JSON.stringify([id, step || null, state.rendered.steps[id] || ""]);
    if (showing === drawn) return;
    const opened = drawnId === id && Boolean(panel.querySelector("details.step-input[open]"));
    drawn = showing;
    drawnId = id;
    const kv = (label, value) => [el("dt", {}, label), el("dd", {}, value)];
    const output = el("div", { class: "prose step-output" });
    output.innerHTML = state.rendered.steps[id] || '<span class="muted">—</span>';
    Api.fill(panel, 
      el("div", { class: "inspector-head" }, el("span", { class: "gicon", "data-type": node.type }, Graph.icon(node.type)), el("h2", {}, node.name || id), el("span", { class: `status ${step ? step.status : "pending"}` }, step ? step.status : "pending")),
      el("dl", { class: "kv" },
        ...kv("Type", node.type), ...kv("Attempt", step ? step.attempt : "–"), ...kv("Duration", step ? elapsed(el("span", { class: "step-duration" }), step.duration_ms, step.started_at) : "–"),
        ...(step && step.model ? kv("Model", step.model) : []),
        // A subflow step's child run, or the latest an agent's orchestration tool call started.
        ...(step && step.child_run_id ? kv("Child run", el("a", { href: `/runs/${step.child_run_id}/`, class: "child-run" }, step.child_run_id.slice(0, 8))) : []),
        ...kv("Tokens", step ? `${step.tokens.input} in · ${step.tokens.output} out` : "–"),
        ...kv("Cost", step ? cost(step.cost_usd, step.unpriced) : "–"),
      ),
      step && step.error ? el("div", { class: "flash bad step-error" }, stepError(step.error)) : null,
      ...inputParts(step ? step.input : null, opened),
      el("h3", { class: "section" }, "Output"), output,
      node.type === "agent" ? agentTrace(id, step) : null,
    );
  }

  // A rendered prompt reads as text, not as one escaped JSON string; the rest of the input
  // (the agent, the format, the script) is there when opened.
  function inputParts(input, opened) {
    if (!input || typeof input !== "object" || typeof input.prompt !== "string") {
      return [el("h3", { class: "section" }, "Input"), el("pre", {}, pretty(input))];
    }
    const { prompt, ...rest } = input;
    return [
      el("h3", { class: "section" }, "Prompt"), el("pre", { class: "step-prompt" }, prompt),
      el("details", { class: "step-input", open: opened }, el("summary", {}, "Full input"), el("pre", {}, pretty(rest))),
    ];
  }

  // A step's error is {"code", "message"}; older records may carry "detail" or a plain string.
  function stepError(error) {
    if (typeof error !== "object") return String(error);
    const text = error.message || error.detail;
    if (!text) return pretty(error);
    return error.code && error.code !== "step_failed" ? `${error.code}: ${text}` : text;
  }

  // --- an agent step as a conversation -------------------------------------------------------------
  // Built from the stored events (agent_turn, tool_execution, tool_result), so a reload shows the
  // same; while a model answers, its text grows from agent_delta frames in a bubble of its own,
  // which the stored turn replaces. Every piece of data goes in as text, never as markup.
  function agentTrace(id, step) {
    const box = el("div", { class: "conversation", "data-step": id });
    drawConversation(box, id, step);
    return box;
  }

  function redrawConversation(id) {
    const box = document.querySelector("#step-panel .conversation");
    if (box && box.dataset.step === id) drawConversation(box, id, state.steps[id]);
  }

  function drawConversation(box, id, step) {
    const events = state.stepEvents[id] || [];
    const live = state.live[id];
    // The counts are the latest attempt's, as the step row's are once it ends.
    const latest = events.slice(events.map((e) => e.type).lastIndexOf("step_start") + 1);
    const turns = latest.filter((e) => e.type === "agent_turn").length;
    const calls = latest.filter((e) => e.type === "tool_execution").length;
    const items = events.map(traceItem).filter(Boolean);
    if (live) items.push(liveItem(live));
    Api.fill(box,
      el("h3", { class: "section" }, `Agent turns (${Math.max(turns, step ? step.turns : 0)}) and tool calls (${Math.max(calls, step ? step.tool_calls : 0)})`),
      items.length ? el("ol", { class: "agent-trace" }, ...items) : el("p", { class: "muted" }, "None yet."));
  }

  function traceItem(event) {
    const d = event.data || {};
    if (event.type === "step_start") {
      return d.attempt > 1 ? el("li", { class: "msg attempt muted" }, `Attempt ${d.attempt}`) : null;
    }
    if (event.type === "agent_turn") {
      const meta = [d.model, d.tokens ? `${d.tokens.input} in / ${d.tokens.output} out` : "", d.duration_ms !== undefined ? duration(d.duration_ms) : ""].filter(Boolean).join(" · ");
      const asks = d.tool_calls && d.tool_calls.length ? `asks for ${d.tool_calls.join(", ")}` : "";
      return el("li", { class: "msg turn", "data-turn": d.turn },
        el("div", { class: "msg-head" }, el("strong", {}, `Turn ${d.turn}`), el("span", { class: "muted" }, meta)),
        d.content ? el("div", { class: "msg-text" }, d.content) : el("div", { class: "msg-text muted" }, asks || "(no text)"),
        d.content && asks ? el("div", { class: "muted msg-note" }, asks) : null);
    }
    if (event.type === "tool_execution") {
      return el("li", { class: "msg tool-call" },
        el("div", { class: "msg-head" }, el("span", { class: "msg-kind" }, "Tool call"), el("strong", { class: "mono" }, d.tool_name || "tool")),
        el("pre", { class: "tool-args" }, pretty(d.args === undefined ? {} : d.args)));
    }
    if (event.type === "tool_result") {
      return el("li", { class: `msg tool-result ${d.ok ? "ok" : "bad"}` },
        el("div", { class: "msg-head" }, el("span", { class: "msg-kind" }, d.ok ? "Result" : d.denied ? "Denied" : "Failed"), el("strong", { class: "mono" }, d.tool_name || "tool"),
          d.duration_ms !== undefined ? el("span", { class: "muted" }, duration(d.duration_ms)) : null),
        el("pre", { class: "tool-output" }, readable(d.preview || "")));
    }
    return null;
  }

  function liveItem(live) {
    return el("li", { class: "msg turn streaming", "data-turn": live.turn },
      el("div", { class: "msg-head" }, el("strong", {}, `Turn ${live.turn}`), el("span", { class: "muted" }, "writing…")),
      el("div", { class: "msg-text", "data-live": "" }, live.text));
  }

  // A tool's answer that is JSON reads better indented; a preview cut short stays as it came.
  function readable(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
  }

  // The step's stored turn `turn`, in its latest attempt: deltas of it are late and dropped.
  function stored(id, turn) {
    const events = state.stepEvents[id] || [];
    for (let i = events.length - 1; i >= 0; i--) {
      if (events[i].type === "step_start") return false;
      if (events[i].type === "agent_turn" && events[i].data && events[i].data.turn === turn) return true;
    }
    return false;
  }

  function onDelta(delta) {
    const id = delta.step_id;
    if (!id || stored(id, delta.turn)) return;
    const live = state.live[id];
    if (live && live.turn === delta.turn) live.text += delta.text;
    else state.live[id] = { turn: delta.turn, text: delta.text };
    if (state.selected !== id) return;
    // A reader at the bottom of the panel follows the text as it grows; one who scrolled up stays.
    const panel = document.getElementById("step-panel");
    const following = panel.scrollHeight - panel.scrollTop - panel.clientHeight < 40;
    const text = panel.querySelector(".conversation .streaming [data-live]");
    if (text && text.closest("li").dataset.turn === String(delta.turn)) text.textContent = state.live[id].text;
    else redrawConversation(id);
    if (following) panel.scrollTop = panel.scrollHeight;
  }

  // --- the event stream ----------------------------------------------------------------------------
  const timeline = document.getElementById("timeline");
  function addEvent(event) {
    const time = new Date(event.ts).toLocaleTimeString();
    const summary = eventSummary(event.type, event.data || {});
    timeline.prepend(el("li", { "data-seq": event.seq, class: `ev ${event.type}` },
      el("span", { class: "mono muted" }, `#${event.seq}`), el("span", { class: "mono" }, time),
      el("strong", {}, event.type.replace(/_/g, " ")), event.step_id ? el("a", { href: "#", onclick: (e) => { e.preventDefault(); selectStep(event.step_id); } }, event.step_id) : null,
      summary ? el("span", { class: "muted" }, String(summary).slice(0, 140)) : null));
  }

  // One line of what happened, from the event's data (runs/services/events.py writes it).
  function eventSummary(type, d) {
    const error = d.error && typeof d.error === "object" ? d.error.detail || d.error.message : d.error;
    switch (type) {
      case "run_queued": return d.trigger ? `${d.trigger} · v${d.version}` : "";
      case "step_failed": case "orchestration_error": return error || "";
      case "step_retry": return [d.attempt ? `attempt ${d.attempt}` : "", error].filter(Boolean).join(" · ");
      case "agent_turn": return [d.model, d.tool_calls && d.tool_calls.length ? `calls ${d.tool_calls.join(", ")}` : ""].filter(Boolean).join(" · ");
      case "tool_execution": return d.tool_name || "";
      case "tool_result": return `${d.tool_name || "tool"} ${d.ok ? "returned" : d.denied ? "denied" : "failed"}`;
      case "approval_decided": return [d.status, d.decided_by ? `by ${d.decided_by}` : ""].filter(Boolean).join(" ");
      case "human_input_required": return d.kind === "input" ? "waiting for a form" : d.kind === "tool_call" ? `waiting to call ${d.tool}` : "waiting for a decision";
      case "orchestration_complete": return d.status || "";
      default: return typeof d.detail === "string" ? d.detail : "";
    }
  }

  const GATE_EVENTS = ["human_input_required", "approval_decided", "approval_escalated"];
  function onEvents(events, status) {
    let traced = false;
    for (const event of events) {
      if (event.seq <= state.lastSeq) continue;
      state.lastSeq = event.seq;
      addEvent(event);
      if (TRACE_TYPES.includes(event.type) && event.step_id) {
        (state.stepEvents[event.step_id] = state.stepEvents[event.step_id] || []).push(event);
        const live = state.live[event.step_id];
        if (live && (event.type === "step_start" || (event.type === "agent_turn" && event.data && event.data.turn >= live.turn))) delete state.live[event.step_id];
        if (event.step_id === state.selected) traced = true;
      }
      if (event.step_id && EVENT_STATUS[event.type]) setNodeStatus(event.step_id, EVENT_STATUS[event.type]);
    }
    if (traced) redrawConversation(state.selected);  // once per frame, not once per event
    if (status) setRunStatus(status);
    refreshSoon();
    if (window.Nav && events.some((e) => GATE_EVENTS.includes(e.type))) window.Nav.refresh();
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/runs/${RUN}/?after=${state.lastSeq}`);
    state.socket = socket;
    socket.onopen = () => { state.connected = true; state.retry = 500; showConnection(); };
    socket.onmessage = (msg) => {
      const data = JSON.parse(msg.data);
      if (data.events) onEvents(data.events, data.status);
      else if (data.agent_delta) onDelta(data.agent_delta);
    };
    socket.onclose = () => {
      state.connected = false;
      state.dropped = true;
      showConnection();
      setTimeout(connect, state.retry);
      state.retry = Math.min(state.retry * 2, 10000);
    };
  }

  // --- actions ------------------------------------------------------------------------------------
  if (CAN_EDIT) {
    document.getElementById("cancel").addEventListener("click", async () => {
      try { await Api.post(`/api/v1/runs/${RUN}/cancel`); refreshSoon(); } catch (err) { alert(err.message); }
    });
    document.getElementById("replay").addEventListener("click", async () => {
      try {
        const { data } = await Api.post(`/api/v1/runs/${RUN}/replay`);
        window.location.href = `/runs/${data.id}/`;
      } catch (err) { alert(err.message); }
    });
  }
  if (CAN_EDIT) {
    const shareBox = document.getElementById("share-box");
    const showShared = (url) => {
      shareBox.hidden = false;
      Api.fill(shareBox, "Anyone with this link can read the output: ", el("a", { href: url, id: "share-url", target: "_blank", rel: "noopener" }, url), " ",
        el("button", { type: "button", class: "ghost small", id: "unshare", onclick: async () => {
          await Api.del(`/api/v1/runs/${RUN}/share`);
          Api.fill(shareBox, "The link is revoked; it now answers 404.");
        } }, "Revoke"));
    };
    document.getElementById("share").addEventListener("click", async () => {
      try { const { data } = await Api.post(`/api/v1/runs/${RUN}/share`); showShared(data.share_url); } catch (err) { alert(err.message); }
    });
    document.getElementById("refine").addEventListener("submit", async (evt) => {
      evt.preventDefault();
      const prompt = evt.target.elements.prompt;
      try {
        await Api.post(`/api/v1/runs/${RUN}/refine`, { prompt: prompt.value });
        prompt.value = "";
        refreshSoon();
      } catch (err) { document.getElementById("refine-status").textContent = err.message; }
    });
  }
  window.addEventListener("resize", () => { graph.cy.resize(); graph.place(); });

  refresh().then(connect).catch((err) => {
    const error = document.getElementById("run-error");
    error.hidden = false;
    error.textContent = `Could not load the run: ${err.message}`;
  });
})();
