/* Calls the JSON API with the session cookie and the CSRF token; errors keep API.md's body. */
(function () {
  "use strict";
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || `Request failed (${status})`);
      this.status = status;
      this.body = body || {};
    }
  }

  async function call(method, url, body, headers) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...(headers || {}) } };
    if (method !== "GET") init.headers["X-CSRFToken"] = csrf();
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
    if (!response.ok) throw new ApiError(response.status, data);
    return { data, response };
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /* replaceChildren, skipping the nulls that conditional parts leave (it would print "null"). */
  function fill(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
    return node;
  }

  /* A new id for a control drawn by a script, so that its <label for> names it. */
  let controls = 0;
  function controlId() {
    controls += 1;
    return `control-${controls}`;
  }

  function pretty(value) {
    if (value === null || value === undefined) return "—";
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }

  /* What a 400 says of each field, "path: message; path: message" ("" when it names none). */
  function fieldList(err) {
    const fields = err && err.body && err.body.fields;
    return fields ? Object.entries(fields).map(([path, messages]) => `${path}: ${messages.join(", ")}`).join("; ") : "";
  }

  function duration(ms) {
    if (ms === null || ms === undefined) return "—";
    if (ms < 1000) return `${ms} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
  }

  window.Api = {
    ApiError, el, fill, pretty, duration, controlId, fieldList,
    get: (url, headers) => call("GET", url, undefined, headers),
    post: (url, body, headers) => call("POST", url, body === undefined ? {} : body, headers),
    put: (url, body, headers) => call("PUT", url, body, headers),
    patch: (url, body, headers) => call("PATCH", url, body, headers),
    del: (url, headers) => call("DELETE", url, undefined, headers),
  };
})();
