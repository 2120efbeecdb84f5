/* A Cytoscape graph with one HTML card per node laid over it.

Cytoscape draws on a canvas; the cards make every node a real element (data-node-id, and
data-status in the run view) that people read and tests find. Cards follow pan, zoom and drag.
*/
(function () {
  "use strict";
  cytoscape.use(cytoscapeDagre);

  const NODE_W = 190, NODE_H = 62, LABEL_W = 170;
  // The node types as the server's registry declares them (label, icon, default config,
  // inspector fields), handed to the page as a JSON script by the editor and run views.
  const typesScript = document.getElementById("node-types");
  const NODE_TYPES = Object.fromEntries((typesScript ? JSON.parse(typesScript.textContent) : []).map((t) => [t.type, t]));
  const icon = (type) => (NODE_TYPES[type] && NODE_TYPES[type].icon) || "•";

  const STYLE = [
    { selector: "node", style: { shape: "round-rectangle", width: NODE_W, height: NODE_H, "background-opacity": 0, "border-width": 0, label: "" } },
    // Long conditions are cut to one line on the canvas; the inspector shows them whole.
    { selector: "edge", style: { width: 2, "line-color": "#b6bcc8", "target-arrow-color": "#b6bcc8", "target-arrow-shape": "triangle", "curve-style": "bezier", "arrow-scale": 1.1, label: "data(label)", "font-size": 11, color: "#475467", "text-background-color": "#f6f7f9", "text-background-opacity": 1, "text-background-padding": 3, "text-wrap": "ellipsis", "text-max-width": `${LABEL_W}px` } },
    { selector: "edge.taken", style: { "line-color": "#16a34a", "target-arrow-color": "#16a34a" } },
    { selector: "edge:selected", style: { "line-color": "#4f46e5", "target-arrow-color": "#4f46e5", width: 3 } },
    { selector: ".eh-handle", style: { "background-color": "#4f46e5", width: 12, height: 12, shape: "ellipse", "background-opacity": 1, "border-width": 2, "border-color": "#fff" } },
    { selector: ".eh-ghost-edge, .eh-preview", style: { "line-color": "#4f46e5", "target-arrow-color": "#4f46e5", "line-style": "dashed" } },
  ];

  function create(container, options) {
    const cy = cytoscape({
      container, style: STYLE, minZoom: 0.3, maxZoom: 2,
      boxSelectionEnabled: false, autoungrabify: !options.editable,
    });
    const layer = document.createElement("div");
    layer.className = "gcards";
    container.appendChild(layer);
    const cards = new Map();

    function card(id) {
      let node = cards.get(id);
      if (!node) {
        node = document.createElement("div");
        node.className = "gnode";
        node.dataset.nodeId = id;
        node.innerHTML = '<span class="gicon"></span><span class="gtext"><span class="gname"></span><span class="gmeta"></span></span><span class="gstate"></span>';
        layer.appendChild(node);
        cards.set(id, node);
      }
      return node;
    }

    function place() {
      const zoom = cy.zoom();
      cy.nodes().forEach((n) => {
        const c = cards.get(n.id());
        if (!c) return;
        const p = n.renderedPosition();
        c.style.transform = `translate(${p.x - (NODE_W * zoom) / 2}px, ${p.y - (NODE_H * zoom) / 2}px) scale(${zoom})`;
        c.classList.toggle("selected", n.selected());
      });
    }
    // One placing a frame: a layout moves every node, one event each, and placing every card
    // for each of them made a flow of 2,000 steps take seconds to show.
    let placing = false;
    cy.on("render pan zoom position", () => {
      if (placing) return;
      placing = true;
      requestAnimationFrame(() => { placing = false; place(); });
    });
    // The container changes size with the page around it (a message above, a resized window).
    if (window.ResizeObserver) new ResizeObserver(() => { cy.resize(); place(); }).observe(container);

    /* Dagre puts long edges on their own lane, but Cytoscape draws every edge from centre to
    centre: an edge that skips a rank can run under the step between. Such an edge bends to the
    side of the steps in its way that needs the smaller detour. */
    const MARGIN = 18;
    const DETOUR_STYLE = "curve-style edge-distances control-point-weights control-point-distances";
    function route() {
      const boxes = cy.nodes().map((n) => ({ id: n.id(), box: n.boundingBox({ includeLabels: false }) }));
      cy.edges().forEach((e) => {
        const p1 = e.source().position(), p2 = e.target().position();
        const dx = p2.x - p1.x, dy = p2.y - p1.y, length = Math.hypot(dx, dy);
        // A step away from the edge's own rectangle (widened by the margin) cannot be in its
        // way: looked past at once, so that a large flow is not every step against every edge.
        const x1 = Math.min(p1.x, p2.x) - MARGIN, x2 = Math.max(p1.x, p2.x) + MARGIN;
        const y1 = Math.min(p1.y, p2.y) - MARGIN, y2 = Math.max(p1.y, p2.y) + MARGIN;
        let right = 0, left = 0, blocked = false;
        if (length > 0) {
          const normal = { x: -dy / length, y: dx / length }; // Cytoscape's positive side
          for (const { id, box } of boxes) {
            if (box.x2 < x1 || box.x1 > x2 || box.y2 < y1 || box.y1 > y2) continue;
            if (id === e.source().id() || id === e.target().id()) continue;
            const corners = [[box.x1, box.y1], [box.x2, box.y1], [box.x1, box.y2], [box.x2, box.y2]];
            const along = corners.map(([x, y]) => ((x - p1.x) * dx + (y - p1.y) * dy) / (length * length));
            const across = corners.map(([x, y]) => (x - p1.x) * normal.x + (y - p1.y) * normal.y);
            const min = Math.min(...across), max = Math.max(...across);
            if (Math.max(...along) <= 0 || Math.min(...along) >= 1 || min > MARGIN || max < -MARGIN) continue;
            blocked = true;
            right = Math.max(right, max + MARGIN);
            left = Math.max(left, MARGIN - min);
          }
        }
        if (!blocked) {
          if (e.hasClass("detour")) e.removeClass("detour").removeStyle(DETOUR_STYLE);
          return;
        }
        // Two control points at a quarter and three quarters keep the curve near its full
        // offset across the middle, where the step in the way is; a condition's label sits
        // on the curve there, so half its width is added (about 6 units a character).
        const label = Math.min(String(e.data("label") || "").length * 6 + 6, LABEL_W) / 2;
        const distance = Math.round(((right <= left ? right : left) + label) * 1.15) * (right <= left ? 1 : -1);
        e.addClass("detour").style({ "curve-style": "unbundled-bezier", "edge-distances": "node-position", "control-point-weights": [0.25, 0.75], "control-point-distances": [distance, distance] });
      });
    }
    let routing = false;
    cy.on("position", "node", () => {
      if (routing) return;
      routing = true;
      requestAnimationFrame(() => { routing = false; route(); });
    });

    function paint(n) {
      const c = card(n.id);
      c.dataset.type = n.type;
      c.querySelector(".gicon").textContent = icon(n.type);
      c.querySelector(".gname").textContent = n.name || n.id;
      c.querySelector(".gmeta").textContent = n.meta || n.type.replace("_", " ");
      if (n.status !== undefined) {
        c.dataset.status = n.status;
        c.querySelector(".gstate").textContent = n.status;
      }
      c.classList.toggle("invalid", Boolean(n.error));
      c.title = n.error || "";
    }

    function setGraph(nodes, edges, layoutAll) {
      cy.elements().remove();
      for (const id of [...cards.keys()]) { cards.get(id).remove(); cards.delete(id); }
      cy.add(nodes.map((n) => ({ group: "nodes", data: { id: n.id }, position: n.position ? { x: n.position.x, y: n.position.y } : undefined })));
      cy.add(edges.map((e) => ({ group: "edges", data: { id: e.id, source: e.source, target: e.target, label: e.condition || "" } })));
      nodes.forEach(paint);
      const placed = nodes.every((n) => n.position && (n.position.x || n.position.y)) && nodes.length > 1;
      if (layoutAll || !placed) layout(); else { route(); cy.fit(undefined, 40); if (cy.zoom() > 1.1) cy.zoom(1.1); cy.center(); }
      place();
    }

    function layout() {
      cy.layout({ name: "dagre", rankDir: "TB", nodeSep: 50, rankSep: 70, fit: true, padding: 40 }).run();
      route();
      if (cy.zoom() > 1.1) { cy.zoom(1.1); cy.center(); }
      place();
    }

    const api = { cy, card, paint, setGraph, layout, place, route, cards };
    container.graph = api; // for the browser tests and the console
    return api;
  }

  window.Graph = { create, icon, NODE_TYPES };
})();
