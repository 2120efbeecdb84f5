/* The orchestration editor: a Cytoscape canvas over the definition, saved through the API. */
(function () {
  "use strict";
  const { el, pretty } = window.Api;
  const root = document.getElementById("editor");
  const ID = root.dataset.orchestrationId;
  const CAN_EDIT = root.dataset.canEdit === "true";
  const BASE = `/api/v1/orchestrations/${ID}`;

  // Each node type's palette entry, default config and inspector fields (API.md "Node types")
  // come from the server's registry; config keys without a field are kept as they are.
  const NODE_TYPES = window.Graph.NODE_TYPES;

  const state = { orchestration: null, etag: null, definition: null, selected: null, dirty: false, errors: {} };
  const graph = window.Graph.create(document.getElementById("canvas"), { editable: CAN_EDIT });
  const cy = graph.cy;
  const messages = document.getElementById("messages");

  // --- messages -------------------------------------------------------------------------
  // Messages float over the top of the canvas (the graph does not move); a success fades
  // after a few seconds, a problem stays until dismissed or replaced.
  let flashTimer = null;
  function flash(kind, text, actions) {
    clearTimeout(flashTimer);
    Api.fill(messages, el("div", { class: `flash ${kind}`, role: kind === "bad" ? "alert" : "status" },
      el("button", { type: "button", class: "flash-close", title: "Dismiss", "aria-label": "Dismiss", onclick: clearFlash }, "×"),
      text, ...(actions || [])));
    if (kind === "ok") flashTimer = setTimeout(clearFlash, 6000);
  }
  function clearFlash() { clearTimeout(flashTimer); Api.fill(messages); }
  function markDirty() {
    state.dirty = true;
    document.getElementById("dirty").hidden = false;
  }

  // --- loading --------------------------------------------------------------------------
  async function load() {
    const { data, response } = await Api.get(BASE);
    state.orchestration = data;
    state.etag = response.headers.get("ETag") || data.etag;
    state.definition = JSON.parse(JSON.stringify(data.definition));
    state.definition.edges = state.definition.edges || [];
    state.definition.inputs = state.definition.inputs || [];
    state.errors = {};
    state.dirty = false;
    document.getElementById("dirty").hidden = true;
    document.getElementById("name").value = data.name;
    document.getElementById("version").textContent = `v${data.version}`;
    showStatus(data.status);
    draw(false);
    // Drawn in place: a tab opened while the page was loading (or before a reload) stays open.
    select(null, { reveal: false });
  }

  // Suggestions for the fields that name another object of the organization: a subflow's
  // orchestration, an http step's credential (one page of each is plenty to pick from).
  async function loadSuggestions() {
    const lists = [
      ["orchestration-options", "/api/v1/orchestrations?limit=200", (o) => o.id !== ID && el("option", { value: o.slug }, o.name)],
      ["credential-options", "/api/v1/credentials?limit=200", (c) => el("option", { value: c.id }, `${c.name} (${c.kind})`)],
    ];
    for (const [id, url, option] of lists) {
      try {
        const { data } = await Api.get(url);
        document.body.appendChild(el("datalist", { id }, ...data.items.map(option).filter(Boolean)));
      } catch (err) { /* no suggestions: the field still takes a typed value */ }
    }
  }

  function showStatus(status) {
    const badge = document.getElementById("status");
    badge.className = `status ${status}`;
    badge.textContent = status.charAt(0).toUpperCase() + status.slice(1);
    const toggle = document.getElementById("toggle-status");
    if (toggle) toggle.textContent = status === "active" ? "Pause" : "Activate";
  }

  function nodeMeta(node) {
    if (node.type === "agent") {
      const agent = node.config.agent;
      return `agent · ${typeof agent === "string" ? agent : (agent && agent.model) || "default"}`;
    }
    if (node.type === "http") return `http · ${node.config.method || "GET"}`;
    if (node.type === "delay") return `delay · ${node.config.seconds || 0} s`;
    return node.type.replace("_", " ");
  }

  function draw(layoutAll) {
    const d = state.definition;
    graph.setGraph(
      d.nodes.map((n) => ({ id: n.id, type: n.type, name: n.name, meta: nodeMeta(n), position: n.position, error: state.errors[n.id] })),
      d.edges.map((e) => ({ ...e, id: e.id || `${e.source}->${e.target}` })),
      layoutAll,
    );
    keepPositions();
  }

  /* The definition holds the positions the canvas shows. A definition without positions (made
  by the API, markdown or a template) is laid out when drawn; without this, saving after a drag
  would keep the dragged step's position only, and the next load would lay it all out again. */
  function keepPositions() {
    cy.nodes().forEach((n) => {
      const node = findNode(n.id());
      if (node) node.position = { x: Math.round(n.position().x), y: Math.round(n.position().y) };
    });
  }

  // --- canvas interactions -----------------------------------------------------------------
  cy.on("tap", "node", (evt) => select({ kind: "node", id: evt.target.id() }));
  cy.on("tap", "edge", (evt) => select({ kind: "edge", id: evt.target.id() }));
  cy.on("tap", (evt) => { if (evt.target === cy) select(null); });
  cy.on("dragfree", "node", () => {
    keepPositions();
    markDirty();
  });

  if (CAN_EDIT && cy.edgehandles) {
    cy.edgehandles({
      canConnect: (source, target) => !source.same(target) && !state.definition.edges.some((e) => e.source === source.id() && e.target === target.id()),
      edgeParams: (source, target) => ({ data: { id: `${source.id()}->${target.id()}`, source: source.id(), target: target.id(), label: "" } }),
      snap: true, noEdgeEventsInDraw: true, disableBrowserGestures: true,
    });
    let handleNode = null;
    const handle = el("div", { class: "connect-handle", title: "Drag onto another step to connect" });
    document.getElementById("canvas").appendChild(handle);
    const eh = cy.edgehandles();
    cy.on("mouseover", "node", (evt) => {
      handleNode = evt.target;
      const p = handleNode.renderedPosition();
      const h = handleNode.renderedOuterHeight();
      handle.style.transform = `translate(${p.x - 7}px, ${p.y + h / 2 - 7}px)`;
      handle.hidden = false;
    });
    cy.on("pan zoom drag", () => { handle.hidden = true; });
    handle.addEventListener("mousedown", (evt) => {
      if (!handleNode) return;
      evt.preventDefault();
      eh.start(handleNode);
      handle.hidden = true;
    });
    cy.on("ehcomplete", (evt, source, target, added) => {
      added.remove();
      connect(source.id(), target.id());
    });
  }

  function connect(source, target) {
    if (state.definition.edges.some((e) => e.source === source && e.target === target)) return;
    state.definition.edges.push({ id: `e_${source}_${target}`, source, target, condition: null });
    markDirty();
    draw(false);
    select({ kind: "edge", id: `e_${source}_${target}` });
  }

  document.addEventListener("keydown", (evt) => {
    if (!CAN_EDIT || !state.selected) return;
    if (evt.key !== "Delete" && evt.key !== "Backspace") return;
    if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) return;
    evt.preventDefault();
    removeSelected();
  });

  function findNode(id) { return state.definition.nodes.find((n) => n.id === id); }
  function findEdge(id) { return state.definition.edges.find((e) => (e.id || `${e.source}->${e.target}`) === id); }

  function newId(type) {
    let i = 1;
    while (findNode(`${type}_${i}`)) i += 1;
    return `${type}_${i}`;
  }

  function addNode(type) {
    if (!state.definition) return; // still loading
    const id = newId(type);
    const extent = cy.extent();
    const last = state.definition.nodes[state.definition.nodes.length - 1];
    const position = last && last.position
      ? { x: last.position.x, y: last.position.y + 130 }
      : { x: Math.round((extent.x1 + extent.x2) / 2), y: Math.round((extent.y1 + extent.y2) / 2) };
    const node = { id, type, name: `${type.replace("_", " ")} ${id.split("_").pop()}`.replace(/^./, (c) => c.toUpperCase()), config: structuredClone(NODE_TYPES[type].default_config), position };
    state.definition.nodes.push(node);
    if (last) state.definition.edges.push({ id: `e_${last.id}_${id}`, source: last.id, target: id, condition: null });
    markDirty();
    draw(false);
    select({ kind: "node", id });
  }

  function removeSelected() {
    const sel = state.selected;
    if (!sel) return;
    if (sel.kind === "node") {
      state.definition.nodes = state.definition.nodes.filter((n) => n.id !== sel.id);
      state.definition.edges = state.definition.edges.filter((e) => e.source !== sel.id && e.target !== sel.id);
    } else {
      const edge = findEdge(sel.id);
      state.definition.edges = state.definition.edges.filter((e) => e !== edge);
    }
    markDirty();
    draw(false);
    select(null);
  }

  // --- inspector ------------------------------------------------------------------------------
  function select(sel, { reveal = true } = {}) {
    state.selected = sel;
    cy.elements().unselect();
    if (sel) cy.getElementById(sel.id).select();
    graph.place();
    if (reveal) showTab("inspector");
    const panel = document.getElementById("tab-inspector");
    if (!sel) Api.fill(panel, ...overviewForm());
    else if (sel.kind === "node" && findNode(sel.id)) Api.fill(panel, ...nodeForm(findNode(sel.id)));
    else if (sel.kind === "edge" && findEdge(sel.id)) Api.fill(panel, ...edgeForm(findEdge(sel.id)));
    else Api.fill(panel, ...overviewForm());
  }

  function input(label, value, onChange, opts) {
    const o = opts || {};
    let control;
    if (o.kind === "select") {
      control = el("select", { disabled: !CAN_EDIT }, ...o.options.map((v) => el("option", { value: v, selected: String(value) === String(v) }, v)));
    } else if (["textarea", "json", "schema", "template"].includes(o.kind)) {
      control = el("textarea", { rows: o.rows || 5, class: o.kind === "json" || o.kind === "schema" ? "code" : "", readonly: !CAN_EDIT });
      control.value = value === undefined || value === null ? "" : (typeof value === "string" ? value : JSON.stringify(value, null, 2));
    } else if (o.kind === "checkbox") {
      control = el("input", { type: "checkbox", checked: Boolean(value), disabled: !CAN_EDIT });
    } else {
      control = el("input", { type: o.kind === "number" ? "number" : "text", readonly: !CAN_EDIT, list: o.list || null, step: o.kind === "number" ? "any" : null });
      control.value = value === undefined || value === null ? "" : (Array.isArray(value) ? value.join(", ") : value);
    }
    if (o.name) control.name = o.name;
    control.id = Api.controlId();
    const error = el("div", { class: "field-error" });
    // A value that does not parse stays unsaved (the last good one is kept) and marks the field,
    // so Save can refuse rather than quietly keep the old value.
    control.addEventListener(o.kind === "checkbox" || o.kind === "select" ? "change" : "input", () => {
      error.textContent = "";
      control.removeAttribute("aria-invalid");
      try {
        onChange(readValue(control, o.kind));
        markDirty();
      } catch (e) {
        error.textContent = e.message;
        control.setAttribute("aria-invalid", "true");
      }
    });
    if (o.kind === "checkbox") return el("label", { class: "check" }, control, label);
    return el("div", { class: "field" }, el("label", { for: control.id }, label), control, o.hint ? el("div", { class: "muted hint" }, o.hint) : null, error);
  }

  function readValue(control, kind) {
    const raw = control.type === "checkbox" ? control.checked : control.value;
    if (kind === "number") return raw === "" ? null : Number(raw);
    if (kind === "list") return raw.split(",").map((s) => s.trim()).filter(Boolean);
    if (kind === "json") {
      if (raw.trim() === "") return null;
      try { return JSON.parse(raw); } catch (e) { throw new Error("Not valid JSON yet."); }
    }
    if (kind === "schema") {
      if (raw.trim() === "") return null;
      let value;
      try { value = JSON.parse(raw); } catch (e) { throw new Error(`Not valid JSON: ${e.message}`); }
      if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error('A JSON Schema is an object, e.g. {"type": "object"}.');
      return value;
    }
    if (kind === "template") {
      const text = raw.trim();
      if ((text.startsWith("{") && !text.startsWith("{{")) || text.startsWith("[")) {
        try { return JSON.parse(text); } catch (e) { return raw; }
      }
      return raw;
    }
    return raw;
  }

  function setOrDelete(obj, key, value) {
    if (value === null || value === "" || (Array.isArray(value) && !value.length)) delete obj[key];
    else obj[key] = value;
  }

  function repaint(node) {
    graph.paint({ id: node.id, type: node.type, name: node.name, meta: nodeMeta(node), error: state.errors[node.id] });
  }

  function nodeForm(node) {
    const parts = [
      el("div", { class: "inspector-head" }, el("span", { class: "gicon", "data-type": node.type }, Graph.icon(node.type)), el("h2", {}, node.name || node.id), el("span", { class: "muted mono" }, node.id)),
    ];
    if (state.errors[node.id]) parts.push(el("div", { class: "flash bad" }, state.errors[node.id]));
    parts.push(input("Name", node.name, (v) => { node.name = v; repaint(node); parts[0].querySelector("h2").textContent = v || node.id; }));
    if (node.type === "agent") parts.push(...agentFields(node));
    for (const field of (NODE_TYPES[node.type] || {}).inspector || []) {
      parts.push(input(field.label, node.config[field.key], (v) => { setOrDelete(node.config, field.key, v); repaint(node); }, field));
    }
    const retry = node.retry || {};
    parts.push(
      el("details", { class: "advanced" },
        el("summary", {}, "Retry, timeout and errors"),
        input("Max attempts", retry.max_attempts, (v) => { node.retry = { ...(node.retry || {}), max_attempts: v || 1 }; }, { kind: "number" }),
        input("Backoff (s)", retry.backoff_s, (v) => { node.retry = { ...(node.retry || {}), backoff_s: v === null ? 1 : v }; }, { kind: "number" }),
        input("Step timeout (s)", node.timeout_s, (v) => setOrDelete(node, "timeout_s", v), { kind: "number" }),
        input("On error", node.on_error || "fail", (v) => { node.on_error = v; }, { kind: "select", options: ["fail", "continue"] }),
        input("Output key (writes state.<key>)", node.output_key, (v) => setOrDelete(node, "output_key", v)),
      ),
    );
    if (CAN_EDIT) parts.push(el("div", { class: "row inspector-actions" }, el("button", { type: "button", class: "danger small", onclick: removeSelected }, "Delete step")));
    return parts;
  }

  function agentFields(node) {
    const agent = node.config.agent;
    if (typeof agent === "string") {
      return [input("Agent (name or id in this organization)", agent, (v) => { node.config.agent = v; repaint(node); })];
    }
    const inline = agent || {};
    node.config.agent = inline;
    return agentForm(inline, () => repaint(node), { schema: false });
  }

  /* An agent's fields: an inline one (its step's inspector offers the step's output schema) or
  one of the definition's agents. */
  function agentForm(agent, changed, { schema }) {
    return [
      ...AgentForm.fields(agent, { canEdit: CAN_EDIT, changed: () => { markDirty(); changed(); } }),
      input("System prompt", agent.system_prompt, (v) => setOrDelete(agent, "system_prompt", v), { kind: "textarea", rows: 3 }),
      AgentForm.tools(agent, { canEdit: CAN_EDIT, changed: () => { markDirty(); changed(); } }),
      schema ? input("Output schema (JSON Schema)", agent.output_schema, (v) => setOrDelete(agent, "output_schema", v), { kind: "schema", hint: "Its steps' answers must validate against it (a step's own overrides it). Empty: a text answer." }) : null,
    ];
  }

  function edgeForm(edge) {
    return [
      el("div", { class: "inspector-head" }, el("h2", {}, "Edge"), el("span", { class: "muted mono" }, `${edge.source} → ${edge.target}`)),
      input("Condition", edge.condition, (v) => {
        edge.condition = v || null;
        const drawn = cy.getElementById(edge.id || `${edge.source}->${edge.target}`);
        if (drawn) drawn.data("label", v || "");
      }, { hint: "An expression without braces, e.g. output.approved or output.score > 0.5" }),
      input("Description", edge.description, (v) => setOrDelete(edge, "description", v)),
      CAN_EDIT ? el("div", { class: "row inspector-actions" }, el("button", { type: "button", class: "danger small", onclick: removeSelected }, "Delete edge")) : null,
    ];
  }

  // The default an input takes when a run leaves it out, edited in the input's own type.
  function defaultField(spec) {
    const type = spec.type || "string";
    if (type === "boolean") {
      const shown = spec.default === true ? "true" : spec.default === false ? "false" : "";
      return input("Default", shown, (v) => setOrDelete(spec, "default", v === "" ? null : v === "true"), { kind: "select", options: ["", "true", "false"] });
    }
    const kind = type === "number" || type === "integer" ? "number" : type === "object" || type === "array" ? "json" : "text";
    return input("Default", spec.default, (v) => setOrDelete(spec, "default", v), { kind, rows: 2 });
  }

  function overviewForm() {
    const d = state.definition;
    const rows = el("div", { class: "inputs" });
    function drawInputs() {
      Api.fill(rows, ...d.inputs.map((spec, index) => el("div", { class: "input-spec", "data-input": spec.name },
        el("div", { class: "input-row" },
          input("Name", spec.name, (v) => { spec.name = v; }, {}),
          // A default of the old type would not fit the new one.
          input("Type", spec.type || "string", (v) => { spec.type = v; delete spec.default; drawInputs(); }, { kind: "select", options: ["string", "number", "integer", "boolean", "object", "array"] }),
          input("Required", spec.required, (v) => { spec.required = v; }, { kind: "checkbox" }),
          CAN_EDIT ? el("button", { type: "button", class: "ghost small", title: "Remove input", onclick: () => { d.inputs.splice(index, 1); markDirty(); drawInputs(); } }, "✕") : null),
        el("div", { class: "input-more" },
          defaultField(spec),
          input("Description", spec.description, (v) => setOrDelete(spec, "description", v), {})),
      )));
    }
    drawInputs();
    return [
      el("h2", {}, "Orchestration"),
      el("p", { class: "muted" }, "Select a step or an edge to edit it."),
      input("Description", state.orchestration.description, (v) => { state.orchestration.description = v; }, { kind: "textarea", rows: 2 }),
      el("h3", { class: "section" }, "Sharing"),
      input("Listed in the public gallery", state.orchestration.is_public, (v) => { state.orchestration.is_public = v; }, { kind: "checkbox", name: "is_public" }),
      input("Show its steps there and let others fork it", state.orchestration.public_definition, (v) => { state.orchestration.public_definition = v; }, { kind: "checkbox", name: "public_definition" }),
      el("p", { class: "muted hint" }, "The gallery never shows runs, triggers, credentials or secrets. Save to apply."),
      el("h3", { class: "section" }, "Inputs"),
      rows,
      CAN_EDIT ? el("button", { type: "button", class: "secondary small", onclick: () => { d.inputs.push({ name: `input_${d.inputs.length + 1}`, type: "string", required: false }); markDirty(); drawInputs(); } }, "+ Add input") : null,
      ...(d.agents && d.agents.length ? [
        el("h3", { class: "section" }, "Agents"),
        ...d.agents.map((agent) => el("details", { class: "agent-spec", "data-agent": agent.name },
          el("summary", {}, agent.name), ...agentForm(agent, () => {}, { schema: true }))),
      ] : []),
      el("h3", { class: "section" }, "Output"),
      input("Output template", d.output, (v) => setOrDelete(d, "output", v), { kind: "textarea", rows: 3, hint: "Default: the output of the last step to finish" }),
      input("Output type", d.output_type || "markdown", (v) => { d.output_type = v; }, { kind: "select", options: ["markdown", "text", "json"] }),
    ];
  }

  // --- saving ----------------------------------------------------------------------------------
  function errorsByNode(fields) {
    const found = {};
    const general = [];
    for (const [path, problems] of Object.entries(fields || {})) {
      const match = /nodes\[(\d+)\]/.exec(path);
      const node = match ? state.definition.nodes[Number(match[1])] : null;
      const text = `${path.replace(/^definition\./, "")}: ${problems.join("; ")}`;
      if (node) found[node.id] = found[node.id] ? `${found[node.id]}\n${text}` : text;
      else general.push(text);
    }
    return { found, general };
  }

  async function save() {
    if (!state.definition) return false;
    if (document.querySelector("#tab-inspector [aria-invalid=true]")) {
      flash("bad", "A field in the inspector does not hold a valid value yet: fix it (or empty it) before saving.");
      return false;
    }
    const button = document.getElementById("save");
    button.disabled = true;
    clearFlash();
    try {
      const body = {
        name: document.getElementById("name").value,
        description: state.orchestration.description || "",
        is_public: Boolean(state.orchestration.is_public),
        public_definition: Boolean(state.orchestration.public_definition),
        definition: state.definition,
      };
      const { data, response } = await Api.patch(BASE, body, { "If-Match": state.etag });
      state.orchestration = data;
      state.etag = response.headers.get("ETag") || data.etag;
      state.errors = {};
      state.dirty = false;
      document.getElementById("dirty").hidden = true;
      document.getElementById("version").textContent = `v${data.version}`;
      draw(false);
      flash("ok", `Saved as version ${data.version}.`);
      if (!document.getElementById("tab-versions").hidden) loadVersions();
      return true;
    } catch (err) {
      if (err.status === 412) {
        flash("bad", "Someone else saved this orchestration after you opened it. Reload to get their version (your unsaved changes are lost), or keep editing and copy what you need first. ",
          [el("button", { type: "button", class: "secondary small", id: "reload", onclick: () => load().then(() => flash("ok", "Reloaded the latest version.")) }, "Reload")]);
      } else if (err.status === 400 && err.body.fields) {
        const { found, general } = errorsByNode(err.body.fields);
        state.errors = found;
        draw(false);
        flash("bad", `${err.message} `, [el("ul", {}, ...[...Object.values(found), ...general].map((t) => el("li", {}, t)))]);
      } else {
        flash("bad", err.message);
      }
      return false;
    } finally {
      button.disabled = false;
    }
  }

  // --- running ---------------------------------------------------------------------------------
  const dialog = document.getElementById("run-dialog");
  function openRun() {
    const fields = document.getElementById("run-fields");
    document.getElementById("run-name").textContent = state.orchestration.name;
    document.getElementById("run-error").textContent = "";
    document.getElementById("run-note").textContent = state.dirty
      ? "Unsaved changes are saved first."
      : state.orchestration.status !== "active" ? "This orchestration is not active: starting a run activates it." : "";
    Api.fill(fields, ...state.definition.inputs.map((spec) => {
      const type = spec.type || "string";
      const attrs = { name: spec.name, "data-type": type, required: spec.required || null };
      let control;
      if (type === "boolean") control = el("input", { ...attrs, type: "checkbox", checked: spec.default === true });
      else if (type === "object" || type === "array") control = el("textarea", { ...attrs, class: "code", rows: 4 });
      else control = el("input", { ...attrs, type: type === "string" ? "text" : "number", step: "any" });
      if (spec.default !== null && spec.default !== undefined && type !== "boolean") control.value = typeof spec.default === "string" ? spec.default : JSON.stringify(spec.default);
      return el("label", {}, `${spec.name}${spec.required ? " *" : ""}`, control, spec.description ? el("div", { class: "muted hint" }, spec.description) : null);
    }));
    if (!state.definition.inputs.length) Api.fill(fields, el("p", { class: "muted" }, "This orchestration declares no inputs."));
    dialog.showModal();
  }

  function runInput() {
    const data = {};
    for (const control of document.querySelectorAll("#run-fields [name]")) {
      const type = control.dataset.type;
      if (type === "boolean") { data[control.name] = control.checked; continue; }
      if (control.value === "") continue;
      if (type === "number" || type === "integer") data[control.name] = Number(control.value);
      else if (type === "object" || type === "array") data[control.name] = JSON.parse(control.value);
      else data[control.name] = control.value;
    }
    return data;
  }

  async function startRun(evt) {
    evt.preventDefault();
    const error = document.getElementById("run-error");
    error.textContent = "";
    let body;
    try { body = { input: runInput() }; } catch (e) { error.textContent = "An object or array input is not valid JSON."; return; }
    try {
      if (state.dirty && !(await save())) { dialog.close(); return; }
      if (state.orchestration.status !== "active") {
        const { data, response } = await Api.post(`${BASE}/activate`);
        state.orchestration = data;
        state.etag = response.headers.get("ETag") || state.etag;
        showStatus(data.status);
      }
      const { data } = await Api.post(`${BASE}/runs`, body);
      window.location.href = `/runs/${data.id}/`;
    } catch (err) {
      const fields = Api.fieldList(err);
      error.textContent = fields ? `${err.message} ${fields}` : err.message;
    }
  }

  // --- triggers --------------------------------------------------------------------------------
  // Secrets are shown once by the API: they stay on screen until the page is left, even when
  // the panel is drawn again (adding a schedule after a webhook must not hide its secret).
  const secrets = {};
  async function loadTriggers(shown) {
    Object.assign(secrets, shown || {});
    const panel = document.getElementById("tab-triggers");
    const { data } = await Api.get(`${BASE}/triggers`);
    const items = data.items || data;
    const list = items.map((t) => el("div", { class: "card trigger", "data-trigger-id": t.id },
      el("div", { class: "row" }, el("strong", {}, t.kind), el("span", { class: `status ${t.state === "live" ? "active" : t.state}` }, t.state), el("span", { class: "spacer" }),
        CAN_EDIT ? el("button", { type: "button", class: "ghost small", onclick: async () => { await Api.del(`/api/v1/triggers/${t.id}`); loadTriggers(); } }, "Remove") : null),
      t.state === "error" && t.state_detail ? el("div", { class: "field-error trigger-error" }, t.state_detail) : null,
      t.kind === "schedule" && Object.keys(t.input || {}).length ? el("div", {}, el("label", {}, "Input"), el("code", { class: "wrap" }, JSON.stringify(t.input))) : null,
      t.kind === "webhook" ? el("div", {}, el("label", {}, "URL"), el("code", { class: "wrap" }, `${location.origin}${t.webhook_url}`)) : null,
      t.kind === "webhook" && secrets[t.id] ? el("div", { class: "flash warn" }, "Signing secret (shown once): ", el("code", { class: "wrap secret" }, secrets[t.id])) : null,
      t.kind === "webhook" && CAN_EDIT ? el("button", { type: "button", class: "secondary small", onclick: async () => {
        const { data: rotated } = await Api.post(`/api/v1/triggers/${t.id}/rotate-secret`);
        loadTriggers({ [t.id]: rotated.signing_secret });
      } }, "Rotate secret") : null,
      t.kind === "schedule" ? el("div", {}, el("code", {}, t.cron_expression), " ", el("span", { class: "muted" }, `(${t.timezone})`), el("div", { class: "cron-text" }, t.cron_description || ""),
        el("div", { class: "muted" }, t.next_run_at ? `Next: ${new Date(t.next_run_at).toLocaleString()}` : "Not scheduled (the orchestration is not active)")) : null,
      el("div", { class: "muted" }, `Fired ${t.trigger_count} times${t.last_run_at ? `, last ${new Date(t.last_run_at).toLocaleString()}` : ""}`),
    ));
    const form = CAN_EDIT ? el("div", { class: "card" },
      el("h3", {}, "Add a trigger"),
      el("button", { type: "button", class: "secondary small", id: "add-webhook", onclick: async () => {
        const { data: t } = await Api.post(`${BASE}/triggers`, { kind: "webhook" });
        loadTriggers({ [t.id]: t.signing_secret });
      } }, "+ Webhook"),
      el("label", {}, "Cron expression", el("input", { id: "cron", placeholder: "30 7 * * 1-5" })),
      el("label", {}, "Time zone", el("input", { id: "cron-tz", value: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" })),
      el("label", {}, "Input of each run (JSON object)", el("textarea", { id: "cron-input", class: "code", rows: 2, placeholder: scheduleInputHint() })),
      el("div", { class: "field-error", id: "cron-error" }),
      el("button", { type: "button", class: "secondary small", id: "add-schedule", onclick: async () => {
        const error = document.getElementById("cron-error");
        const text = document.getElementById("cron-input").value.trim();
        let input = {};
        try {
          input = text ? JSON.parse(text) : {};
        } catch (err) {
          error.textContent = `Input: not JSON (${err.message})`;
          return;
        }
        try {
          await Api.post(`${BASE}/triggers`, { kind: "schedule", cron_expression: document.getElementById("cron").value, timezone: document.getElementById("cron-tz").value, input });
          loadTriggers();
        } catch (err) {
          error.textContent = Api.fieldList(err) || err.message;
        }
      } }, "+ Schedule"),
    ) : null;
    Api.fill(panel, el("h2", {}, "Triggers"), ...(list.length ? list : [el("p", { class: "muted" }, "Only manual and API runs so far.")]), form);
  }

  // What a schedule's runs must be given: the declared inputs that are required and have no
  // default (a slot started with one missing would fail).
  function scheduleInputHint() {
    const inputs = (state.definition && state.definition.inputs) || [];
    const needed = inputs.filter((i) => i.required && i.default == null);
    return needed.length ? JSON.stringify(Object.fromEntries(needed.map((i) => [i.name, i.type === "string" ? "..." : null]))) : "{}";
  }

  // --- versions --------------------------------------------------------------------------------
  async function loadVersions() {
    const panel = document.getElementById("tab-versions");
    const { data } = await Api.get(`${BASE}/versions`);
    const items = data.items || data;
    const current = state.orchestration.version;
    const detail = el("div", { class: "version-diff" });
    Api.fill(panel, el("h2", {}, "Versions"), el("ul", { class: "versions" }, ...items.map((v) => el("li", { "data-version": v.version },
      el("div", { class: "row" }, el("strong", {}, `v${v.version}`), v.version === current ? el("span", { class: "status active" }, "current") : null, el("span", { class: "spacer" }), el("span", { class: "muted" }, new Date(v.created_at).toLocaleString())),
      el("div", { class: "muted" }, v.summary || ""),
      v.version !== current ? el("div", { class: "row" },
        el("button", { type: "button", class: "ghost small", onclick: () => showDiff(v.version, current, detail) }, "Diff with current"),
        CAN_EDIT ? el("button", { type: "button", class: "secondary small", onclick: async () => {
          if (state.dirty && !window.confirm(`Restore version ${v.version}? Your unsaved changes are lost.`)) return;
          await Api.post(`${BASE}/versions/${v.version}/restore`);
          await load();
          flash("ok", `Restored version ${v.version} as a new version.`);
          loadVersions();
        } }, "Restore") : null) : null,
    ))), detail);
  }

  async function showDiff(a, b, target) {
    const { data } = await Api.get(`${BASE}/versions/${a}/diff/${b}`);
    const label = (x) => (typeof x === "string" ? x : x.id || `${x.source || ""} → ${x.target || ""}`);
    const section = (title, list) => (list && list.length
      ? el("div", {}, el("h3", { class: "section" }, title), el("ul", {}, ...list.map((x) => el("li", { class: "mono" }, label(x) + (x.fields ? ` (${x.fields.join(", ")})` : "")))))
      : null);
    const nodes = data.nodes || {};
    const edges = data.edges || {};
    const inputs = data.inputs || {};
    const parts = [
      section("Steps added", nodes.added), section("Steps removed", nodes.removed), section("Steps changed", nodes.changed),
      section("Edges added", edges.added), section("Edges removed", edges.removed), section("Edges changed", edges.changed),
      section("Inputs added", inputs.added), section("Inputs removed", inputs.removed), section("Inputs changed", inputs.changed),
      data.fields_changed && data.fields_changed.length ? el("p", {}, `Also changed: ${data.fields_changed.join(", ")}`) : null,
      data.output_changed || data.output_type_changed ? el("p", {}, "The output template changed.") : null,
    ].filter(Boolean);
    Api.fill(target, el("h3", {}, `v${a} → v${b}`), parts.length ? parts : el("p", { class: "muted" }, "The graph is the same; only the name, description or settings changed."),
      el("details", {}, el("summary", {}, "Raw diff"), el("pre", {}, pretty(data))));
  }

  // --- markdown --------------------------------------------------------------------------------
  async function loadMarkdown() {
    const panel = document.getElementById("tab-markdown");
    const area = el("textarea", { class: "code markdown-source", rows: 24, id: "markdown", readonly: !CAN_EDIT });
    const notes = el("div", { class: "markdown-notes" });
    Api.fill(panel, el("h2", {}, "Markdown"), el("p", { class: "muted" }, "The same definition as a document. Apply puts it on the canvas; Save keeps it."), area, notes,
      CAN_EDIT ? el("div", { class: "row" }, el("button", { type: "button", class: "secondary small", id: "apply-markdown", onclick: () => applyMarkdown(area, notes) }, "Apply to canvas")) : null);
    try {
      const { data } = await Api.post("/api/v1/orchestrations/render-markdown", { name: document.getElementById("name").value, description: state.orchestration.description || "", definition: state.definition });
      area.value = data.markdown;
      if (data.warnings && data.warnings.length) Api.fill(notes, el("div", { class: "flash warn" }, "Markdown cannot say everything this definition holds: ", el("ul", {}, ...data.warnings.map((w) => el("li", {}, w)))));
    } catch (err) {
      Api.fill(notes, el("div", { class: "flash bad" }, err.message));
    }
  }

  async function applyMarkdown(area, notes) {
    const { data } = await Api.post("/api/v1/orchestrations/compile", { markdown: area.value });
    if (!data.valid) {
      Api.fill(notes, el("div", { class: "flash bad" }, "The document does not compile:", el("ul", {}, ...data.errors.map((e) => el("li", {}, `line ${e.line}: ${e.message}`)))));
      return;
    }
    state.definition = data.definition;
    if (data.name) document.getElementById("name").value = data.name;
    state.orchestration.description = data.description || state.orchestration.description;
    markDirty();
    draw(true);
    Api.fill(notes, el("div", { class: "flash ok" }, "Applied to the canvas. Save to keep it."),
      ...(data.compiler_notes || []).map((n) => el("div", { class: "muted" }, `Note: ${n}`)));
  }

  // --- tabs and buttons ------------------------------------------------------------------------
  function showTab(name) {
    for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.tab === name);
    for (const panel of document.querySelectorAll(".tab-panel")) panel.hidden = panel.id !== `tab-${name}`;
  }
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      const name = tab.dataset.tab;
      showTab(name);
      // The triggers' schedule form reads the definition's inputs: a tab opened while the page
      // was loading waits for it (its placeholder was "{}" for an orchestration that needs some).
      const loaders = { triggers: () => loaded.then(() => loadTriggers()), versions: loadVersions, markdown: loadMarkdown };
      if (loaders[name]) loaders[name]().catch((err) => flash("bad", err.message));
    });
  }
  for (const button of document.querySelectorAll("[data-add-type]")) button.addEventListener("click", () => addNode(button.dataset.addType));
  document.getElementById("layout").addEventListener("click", () => {
    graph.layout();
    keepPositions();
    if (CAN_EDIT) markDirty();
  });
  document.getElementById("name").addEventListener("input", markDirty);
  if (CAN_EDIT) {
    document.getElementById("save").addEventListener("click", save);
    document.getElementById("run").addEventListener("click", openRun);
    document.getElementById("run-form").addEventListener("submit", startRun);
    document.getElementById("run-cancel").addEventListener("click", () => dialog.close());
    document.getElementById("toggle-status").addEventListener("click", async () => {
      const action = state.orchestration.status === "active" ? "pause" : "activate";
      try {
        const { data, response } = await Api.post(`${BASE}/${action}`);
        state.orchestration.status = data.status;
        state.etag = response.headers.get("ETag") || data.etag || state.etag;
        showStatus(data.status);
      } catch (err) { flash("bad", err.message); }
    });
  }
  window.addEventListener("beforeunload", (evt) => { if (state.dirty) { evt.preventDefault(); evt.returnValue = ""; } });
  window.addEventListener("resize", () => { cy.resize(); graph.place(); });

  const loaded = load().catch((err) => flash("bad", `Could not load the orchestration: ${err.message}`));
  if (CAN_EDIT) loadSuggestions();
  // Made from a template with a webhook: its signing secret, handed over once by the server.
  const handed = JSON.parse(document.getElementById("new-secrets").textContent || "{}");
  if (Object.keys(handed).length) {
    showTab("triggers");
    // After the definition: the schedule form's placeholder reads its inputs.
    loaded.then(() => loadTriggers(handed)).catch((err) => flash("bad", err.message));
    flash("ok", "Created from the template. Copy the webhook's signing secret from Triggers now: it is shown only once.");
  }
})();
