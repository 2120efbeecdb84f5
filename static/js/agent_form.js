/* The agent fields of the editor's inspector: a model picker fed by GET /models (grouped by
provider, with the price per 1k tokens and the aliases of each model), a warning when the chosen
model's provider has no key on this server and the agent brings none, and a credential picker
fed by GET /credentials. Everything shown from the server goes in as text, never as markup. */
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
    const select = el("select", { name: "model", class: "model-picker", disabled: !canEdit, "aria-label": "Model" });
    const typed = el("input", { type: "text", name: "model-typed", hidden: true, readonly: !canEdit, placeholder: "provider/name or an alias" });
    const warning = el("div", { class: "flash warn model-warning", role: "status", hidden: true });
    const credential = el("select", { name: "credential", class: "credential-picker", disabled: !canEdit, "aria-label": "Credential" });
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
      el("div", { class: "field" }, el("label", {}, "Model"), select, typed, warning,
        el("div", { class: "muted hint" }, "Prices are USD per 1,000 tokens; builtin/echo and builtin/script run offline.")),
      el("div", { class: "field" }, el("label", {}, "Credential"), credential,
        el("div", { class: "muted hint" }, "The API key this agent uses instead of the server's.")),
    ];
  }

  window.AgentForm = { fields };
})();
