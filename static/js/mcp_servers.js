/* The MCP servers page: "List its tools again" asks the API to list a server's tools again
   (POST /api/v1/mcp-servers/<id>/refresh), then shows the page as it now stands. */
(function () {
  "use strict";
  for (const button of document.querySelectorAll("button[data-refresh]")) {
    const note = button.parentElement.querySelector("[role=status]");
    button.addEventListener("click", async () => {
      button.disabled = true;
      note.textContent = "Listing its tools…";
      try {
        await Api.post(`/api/v1/mcp-servers/${button.dataset.refresh}/refresh`);
        window.location.reload();
      } catch (error) {
        note.textContent = error.message;
        button.disabled = false;
      }
    });
  }
})();
