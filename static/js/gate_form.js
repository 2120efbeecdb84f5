/* The form of a pending approval or input step (its `fields`), shared by the inbox and the run
   view: one control per field type of API.md's human_input, the response they answer, and the
   tool calls a tool_call gate lets run. */
(function () {
  "use strict";
  const { el } = window.Api;

  /* A labelled control for one field spec; `read()` gives its value typed as the API expects,
     `error` is where a problem with this field can be shown. */
  function field(spec) {
    const options = typeof spec.options === "string" ? spec.options.split(",").map((s) => s.trim()) : (spec.options || []);
    let control;
    if (spec.type === "textarea") control = el("textarea", { name: spec.name, rows: 3 });
    else if (spec.type === "select") control = el("select", { name: spec.name }, el("option", { value: "" }, "—"), ...options.map((o) => el("option", { value: o }, o)));
    else if (spec.type === "boolean") control = el("input", { type: "checkbox", name: spec.name });
    else control = el("input", { type: spec.type === "number" ? "number" : "text", name: spec.name, step: "any" });
    const read = () => {
      if (spec.type === "boolean") return control.checked;
      if (spec.type === "number") return control.value === "" ? null : Number(control.value);
      return control.value;
    };
    const error = el("div", { class: "field-error", "data-field-error": spec.name });
    return { name: spec.name, read, error, node: el("label", {}, `${spec.label || spec.name}${spec.required ? " *" : ""}`, control, error) };
  }

  /* The `response` object of an approve call: each field's value under its name. */
  function response(fields) {
    const answer = {};
    for (const f of fields) answer[f.name] = f.read();
    return answer;
  }

  /* A tool_call gate's calls, each its name and arguments as text (never as markup: the model
     wrote them). Deciding lets every call of the model's turn run, so every one is shown. */
  function toolCalls(gate) {
    return (gate.calls || [gate]).map((call) => el("div", { class: "tool-call", "data-tool-call": "" },
      el("code", {}, call.tool || ""), el("pre", {}, JSON.stringify(call.args, null, 2))));
  }

  window.GateForm = { field, response, toolCalls };
})();
