/* The agent fields of the editor's inspector: a model picker fed by GET /models (grouped by
provider, with the price per 1k tokens and the aliases of each model), a warning when the chosen
model's provider has no key on this server and the agent brings none, and a credential picker
fed by GET /credentials; and the agent's tools, picked from the built-in ones, the organization's
MCP servers (GET /mcp-servers) and its active orchestrations. Everything shown from the server
goes in as text, never as markup. */
(function () {
  "use strict";
  const { el } = window.Api;
  const OTHER = "\u0000other"; // the picker's "type another name" entry: no model is called that

  // Every page of a list: the price table alone is longer than one page.
  async function all(url) {
    const items = [];
    let cursor = null;
    do {
      const { data } = await Api.get(`${url}?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      items.push(...data.items);
      cursor = data.next_cursor;
    } while (cursor);
    return items;
  }

  // Loaded once per page; a failed load leaves the pickers with what the agent already says.
  let loaded = null;
  function load() {
    if (!loaded) {
      loaded = Promise.all([all("/api/v1/models").catch(() => []), all("/api/v1/credentials").catch(() => [])])
        .then(([models, credentials]) => ({ models, credentials }));
    }
    return loaded;
  }

  function dollars(value) {
    return `$${Number(value.toPrecision(4))}`;
  }

  function priceText(item) {
    if (!item.price) return "unpriced";
    return `${dollars(item.price.input_per_1k)} in / ${dollars(item.price.output_per_1k)} out per 1k`;
  }

  function optionText(item) {
    const aliases = item.aliases.length ? ` · aliases: ${item.aliases.join(", ")}` : "";
    return `${item.model} — ${priceText(item)}${aliases}`;
  }

  // The catalogue entry a model name stands for: its own, or the one an alias (or `default`) names.
  function entryFor(models, name) {
    return models.find((m) => m.model === name) || models.find((m) => m.aliases.includes(name)) || null;
  }

  function providerOf(models, name) {
    const entry = entryFor(models, name);
    if (entry) return { provider: entry.provider, configured: entry.configured };
    const provider = name && name.includes("/") ? name.split("/")[0] : null;
    const known = models.find((m) => m.provider === provider);
    return { provider, configured: known ? known.configured : true };
  }

  /* The model picker and the credential picker of `agent` (an inline agent or one of the
  definition's agents), changed in place; `changed()` is called after each change. */
  function fields(agent, { canEdit, changed }) {
    const select = el("select", { id: Api.controlId(), name: "model", class: "model-picker", disabled: !canEdit, "aria-label": "Model" });
    const typed = el("input", { type: "text", name: "model-typed", hidden: true, readonly: !canEdit, placeholder: "provider/name or an alias" });
    const warning = el("div", { class: "flash warn model-warning", role: "status", hidden: true });
    const credential = el("select", { id: Api.controlId(), name: "credential", class: "credential-picker", disabled: !canEdit, "aria-label": "Credential" });
    let models = [];

    function warn() {
      const { provider, configured } = providerOf(models, agent.model || "default");
      const show = !configured && !agent.credential;
      warning.hidden = !show;
      warning.textContent = show
        ? `No API key for ${provider} is set on this server: choose a credential below that holds one, or the step fails when it runs.`
        : "";
    }

    function drawModels() {
      const current = agent.model || "default";
      const groups = new Map();
      for (const item of models) {
        if (!groups.has(item.provider)) groups.set(item.provider, []);
        groups.get(item.provider).push(item);
      }
      const option = (value, text) => el("option", { value, selected: value === current }, text);
      const parts = [...groups].map(([provider, items]) => el("optgroup", { label: provider }, ...items.map((item) => option(item.model, optionText(item)))));
      const aliases = models.flatMap((item) => item.aliases.map((alias) => option(alias, `${alias} → ${item.model}`)));
      if (aliases.length) parts.push(el("optgroup", { label: "aliases" }, ...aliases));
      const offered = models.some((m) => m.model === current || m.aliases.includes(current));
      if (!offered) parts.unshift(el("optgroup", { label: "as written" }, option(current, `${current} (not in the price table)`)));
      if (canEdit) parts.push(el("optgroup", { label: "other" }, el("option", { value: OTHER }, "Type another model name…")));
      Api.fill(select, ...parts);
    }

    function drawCredentials(credentials) {
      const current = agent.credential || "";
      const options = [el("option", { value: "", selected: !current }, "None: the server's key for the provider")];
      for (const c of credentials) {
        // A definition may name a credential by id or by name; a new choice is saved by name.
        const value = current === c.id ? c.id : c.name;
        options.push(el("option", { value, selected: value === current }, `${c.name} (${c.kind})`));
      }
      if (current && !credentials.some((c) => c.id === current || c.name === current)) {
        options.push(el("option", { value: current, selected: true }, `${current} (not found)`));
      }
      Api.fill(credential, ...options);
    }

    function setModel(value) {
      agent.model = value;
      warn();
      changed();
    }

    select.addEventListener("change", () => {
      if (select.value === OTHER) {
        typed.hidden = false;
        typed.value = agent.model || "";
        typed.focus();
        return;
      }
      typed.hidden = true;
      setModel(select.value);
    });
    typed.addEventListener("input", () => setModel(typed.value.trim()));
    typed.addEventListener("change", drawModels);
    credential.addEventListener("change", () => {
      if (credential.value) agent.credential = credential.value;
      else delete agent.credential;
      warn();
      changed();
    });

    drawModels();
    drawCredentials([]);
    load().then((data) => {
      models = data.models;
      drawModels();
      drawCredentials(data.credentials);
      warn();
    });

    return [
      el("div", { class: "field" }, el("label", { for: select.id }, "Model"), select, typed, warning,
        el("div", { class: "muted hint" }, "Prices are USD per 1,000 tokens; builtin/echo and builtin/script run offline.")),
      el("div", { class: "field" }, el("label", { for: credential.id }, "Credential"), credential,
        el("div", { class: "muted hint" }, "The API key this agent uses instead of the server's.")),
    ];
  }

  /* --- tools ---------------------------------------------------------------------------------
  An agent's `tools`: built-in names, `{"mcp": server, "tools": [names]}` (all the server's tools
  without `tools`), `{"orchestration": slug, "name", "description"}`; an object item may carry
  `"approval": {}` (a call waits for a person). The servers' tool names and descriptions are
  theirs, so they go in as text only. */
  const BUILTIN_TOOLS = [{ name: "http_get", description: "Fetch a URL with HTTP GET." }];

  let sources = null;
  function loadSources() {
    if (!sources) {
      sources = Promise.all([
        all("/api/v1/mcp-servers").catch(() => []),
        all("/api/v1/orchestrations").catch(() => []),
      ]).then(([servers, orchestrations]) => ({
        servers,
        orchestrations: orchestrations.filter((o) => o.status === "active"),
      }));
    }
    return sources;
  }

  function itemLabel(item) {
    if (typeof item === "string") return `${item} (built in)`;
    if (item && typeof item.mcp === "string") {
      return `MCP ${item.mcp}: ${Array.isArray(item.tools) ? item.tools.join(", ") : "all its tools"}`;
    }
    if (item && typeof item.orchestration === "string") return `Orchestration ${item.orchestration} as ${item.name || "?"}`;
    return JSON.stringify(item);
  }

  // A tool's name as a model is told it: what every provider accepts.
  function toolName(text) {
    return (text || "").replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64) || "tool";
  }

  // A tool item whose calls wait for a person's approval (its defaults: the server decides who).
  function gatedIf(item, gated) {
    if (gated) item.approval = {};
    return item;
  }

  function check(name, checked, disabled, text) {
    const box = el("input", { type: "checkbox", name, checked: Boolean(checked), disabled: !!disabled });
    return { box, label: el("label", { class: "check" }, box, text) };
  }

  function tools(agent, { canEdit, changed }) {
    const list = el("ul", { class: "tool-items" });
    const picker = el("select", { name: "tool-source", "aria-label": "Add a tool from", disabled: !canEdit });
    const choices = el("div", { class: "tool-choices" });
    const add = el("button", { type: "button", class: "secondary small", name: "add-tool", hidden: true }, "Add");
    const problem = el("div", { class: "field-error" });
    let loaded = { servers: [], orchestrations: [] };
    let pending = null; // () => [items] for what the choices say, null when nothing is chosen

    function items() {
      return Array.isArray(agent.tools) ? agent.tools : [];
    }

    function save(next) {
      if (next.length) agent.tools = next;
      else delete agent.tools;
      changed();
      drawItems();
    }

    // Redrawing the list replaces its controls: the focus goes back to the same control of the
    // same item (or, when that item is gone, the next item's, else the picker), so a keyboard
    // user is never sent back to the top of the page.
    function keepFocus(redraw) {
      const active = document.activeElement;
      const row = list.contains(active) ? active.closest("li.tool-item") : null;
      redraw();
      if (!row) return;
      const count = list.querySelectorAll("li.tool-item").length;
      const index = Math.min(Number(row.dataset.index), count - 1);
      const again = index >= 0 ? list.querySelector(`li.tool-item[data-index="${index}"] [name="${active.name}"]`) : null;
      (again || picker).focus();
    }

    function drawItems() {
      keepFocus(drawAllItems);
    }

    function drawAllItems() {
      Api.fill(list, ...items().map((item, index) => {
        const isObject = item !== null && typeof item === "object";
        const approval = check("approval", isObject && item.approval, !canEdit || !isObject, "needs approval");
        approval.box.setAttribute("aria-label", `${itemLabel(item)} needs approval`);
        approval.box.addEventListener("change", () => {
          const next = items().slice();
          const copy = { ...next[index] };
          if (approval.box.checked) copy.approval = copy.approval || {};
          else delete copy.approval;
          next[index] = copy;
          save(next);
        });
        return el("li", { class: "tool-item", "data-index": index },
          el("span", { class: "tool-label" }, itemLabel(item)),
          isObject ? approval.label : null,
          canEdit ? el("button", { type: "button", name: "remove-tool", class: "ghost small", title: "Remove tool", "aria-label": `Remove ${itemLabel(item)}`, onclick: () => save(items().filter((_, i) => i !== index)) }, "✕") : null);
      }));
      if (!items().length) list.append(el("li", { class: "muted" }, "No tools."));
    }

    function drawPicker() {
      const groups = [el("option", { value: "" }, "Add a tool…")];
      groups.push(el("optgroup", { label: "Built in" }, ...BUILTIN_TOOLS.map((t) => el("option", { value: `builtin:${t.name}` }, t.name))));
      if (loaded.servers.length) {
        groups.push(el("optgroup", { label: "MCP servers" }, ...loaded.servers.map((s) => el("option", { value: `mcp:${s.name}` }, s.name))));
      }
      if (loaded.orchestrations.length) {
        groups.push(el("optgroup", { label: "Orchestrations" }, ...loaded.orchestrations.map((o) => el("option", { value: `orchestration:${o.slug}` }, o.name))));
      }
      Api.fill(picker, ...groups);
    }

    function mcpChoices(server) {
      const listed = Array.isArray(server.tools) ? server.tools : [];
      const everything = check("all-tools", !listed.length, false, listed.length ? "All its tools (also ones it adds later)" : "All its tools");
      const everythingApproval = check("all-tools-approval", false, false, "needs approval");
      const rows = listed.map((tool) => {
        const pick = check("tool", false, false, tool.name);
        pick.box.value = tool.name;
        const approval = check("tool-approval", false, false, "needs approval");
        approval.box.setAttribute("aria-label", `${tool.name} needs approval`);
        return { tool, pick, approval, row: el("li", { class: "tool-choice", "data-tool": tool.name }, pick.label, approval.label, el("div", { class: "muted hint" }, tool.description || "")) };
      });
      function sync() {
        for (const r of rows) r.pick.box.disabled = everything.box.checked;
      }
      everything.box.addEventListener("change", sync);
      // "needs approval" is about a tool being added: ticking it ticks the tool (or all of them),
      // so a gated tool is never left out because only its approval box was ticked.
      everythingApproval.box.addEventListener("change", () => {
        if (everythingApproval.box.checked) everything.box.checked = true;
        sync();
      });
      for (const r of rows) {
        r.approval.box.addEventListener("change", () => {
          if (r.approval.box.checked) r.pick.box.checked = true;
        });
        r.pick.box.addEventListener("change", () => {
          if (!r.pick.box.checked) r.approval.box.checked = false;
        });
      }
      sync();
      Api.fill(choices,
        el("div", { class: "tool-choice" }, everything.label, everythingApproval.label),
        rows.length ? el("ul", { class: "tool-choice-list" }, ...rows.map((r) => r.row)) : el("div", { class: "muted hint" }, server.status === "error" ? `Its tools could not be listed: ${server.error || "unknown error"}` : "Its tools are listed when it runs."));
      pending = () => {
        if (everything.box.checked) {
          return [gatedIf({ mcp: server.name }, everythingApproval.box.checked)];
        }
        const picked = rows.filter((r) => r.pick.box.checked);
        const plain = picked.filter((r) => !r.approval.box.checked).map((r) => r.tool.name);
        const gated = picked.filter((r) => r.approval.box.checked).map((r) => r.tool.name);
        const made = [];
        if (plain.length) made.push({ mcp: server.name, tools: plain });
        if (gated.length) made.push(gatedIf({ mcp: server.name, tools: gated }, true));
        if (!made.length) throw new Error("Choose at least one tool, or all of them.");
        return made;
      };
    }

    function orchestrationChoices(orchestration) {
      const name = el("input", { id: Api.controlId(), type: "text", name: "tool-name", "aria-label": "Tool name" });
      name.value = toolName(orchestration.slug);
      const description = el("input", { id: Api.controlId(), type: "text", name: "tool-description", "aria-label": "Tool description" });
      description.value = orchestration.description || orchestration.name;
      const approval = check("tool-approval", false, false, "needs approval");
      Api.fill(choices,
        el("div", { class: "field" }, el("label", { for: name.id }, "Tool name"), name),
        el("div", { class: "field" }, el("label", { for: description.id }, "What it does (the model reads this)"), description),
        approval.label);
      pending = () => {
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(name.value)) throw new Error("A tool name is 1 to 64 letters, digits, _ or -.");
        const item = { orchestration: orchestration.slug, name: name.value, description: description.value };
        if (approval.box.checked) item.approval = {};
        return [item];
      };
    }

    picker.addEventListener("change", () => {
      problem.textContent = "";
      const [kind, ...rest] = picker.value.split(":");
      const key = rest.join(":");
      pending = null;
      Api.fill(choices);
      if (kind === "builtin") pending = () => [key];
      else if (kind === "mcp") mcpChoices(loaded.servers.find((s) => s.name === key));
      else if (kind === "orchestration") orchestrationChoices(loaded.orchestrations.find((o) => o.slug === key));
      add.hidden = pending === null;
    });

    add.addEventListener("click", () => {
      if (!pending) return;
      let made;
      try { made = pending(); } catch (e) { problem.textContent = e.message; return; }
      const known = new Set(items().map((item) => JSON.stringify(item)));
      save([...items(), ...made.filter((item) => !known.has(JSON.stringify(item)))]);
      picker.value = "";
      pending = null;
      Api.fill(choices);
      add.hidden = true;
      problem.textContent = "";
      picker.focus(); // the Add button is hidden now: the keyboard goes on from the picker
    });

    drawItems();
    drawPicker();
    loadSources().then((data) => { loaded = data; drawPicker(); });
    return el("div", { class: "field agent-tools" }, el("label", {}, "Tools"), list,
      canEdit ? el("div", { class: "tool-add" }, picker, choices, add, problem) : null,
      el("div", { class: "muted hint" }, "Built-in tools, an MCP server's tools, or another active orchestration. A tool that needs approval waits for a person before each call."));
  }

  window.AgentForm = { fields, tools };
})();
