// A filter form's select applies itself when changed. A script file, not an inline `onchange`:
// the public pages' Content-Security-Policy runs no inline handler.
document.querySelectorAll("form.filters select").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});
