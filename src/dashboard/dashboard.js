// The live dashboard of a running topology (served by `topo run --http ADDR` at `/`).
//
//   /api/topology (once) ──► layout(): layers by the longest path from the spouts, each layer
//                            ordered by the barycentre of its predecessors ──► drawGraph()
//   /api/metrics (every second) ──► its `figures`: per component rates, capacity, queue fill,
//                            backpressure and latency quantiles over the last WINDOW_S seconds,
//                            each edge's rate, and the bottleneck — computed by the endpoint
//                            (src/figures.rs), the same figures `topo top` shows
//                            ──► graph colours, bottleneck, table, sparklines, errors
//
// The page computes no figure and judges no bottleneck itself: it shows what the endpoint says,
// so it cannot disagree with `topo top`. It only keeps the recent points of its charts.

const POLL_MS = 1000;
// The window the endpoint takes the figures over: tasks add their counts and busy time once per
// batch, so a one-second delta of a slow stage jumps between 0 and several seconds' worth; five
// seconds keep the figures steady and still live.
const WINDOW_S = 5;
// Sparklines and charts show this many seconds.
const HISTORY_S = 300;
const CAP_MID = 0.3;
const CAP_HIGH = 0.7;
const QUEUE_HIGH = 0.5;
const FETCH_TIMEOUT_MS = 3000;
const SVG_NS = "http://www.w3.org/2000/svg";

const NODE_W = 184;
const NODE_H = 78;
const COL_GAP = 150;
const ROW_GAP = 44;
const MARGIN = 36;

const state = {
  /** /api/topology, or null until it is loaded. */
  topology: null,
  /** Graph elements by component id, and edges in topology order. */
  graph: null,
  /** The uptime of the newest snapshot shown, in seconds (null before the first). */
  uptime: null,
  /** One point per poll for the charts, oldest first. */
  series: [],
  /** Table rows by component id. */
  rows: new Map(),
  /** The seq of the newest error shown. */
  lastErrorSeq: null,
};

// ---------------------------------------------------------------- small helpers

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A serialised Rust Duration ({secs, nanos}) in seconds. */
function secs(d) {
  return d ? d.secs + d.nanos / 1e9 : 0;
}

/** A count or rate in short form: 0.42, 7.50, 42.5, 312, 12.3k, 4.56M (whole numbers as such). */
export function short(n) {
  if (!Number.isFinite(n)) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(1) + "k";
  if (a >= 100 || n === 0 || Number.isInteger(n)) return Math.round(n).toString();
  if (a >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** Microseconds as a readable duration. */
function micros(us) {
  if (us === null || us === undefined || !Number.isFinite(us)) return "–";
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 2 : 1)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

function percent(x) {
  return `${Math.round(100 * x)}%`;
}

function uptimeText(s) {
  s = Math.floor(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (h > 0) return `${h}h ${pad(m)}m ${pad(sec)}s`;
  if (m > 0) return `${m}m ${pad(sec)}s`;
  return `${sec}s`;
}

function capClass(cap) {
  if (cap === null || cap === undefined) return "cap-none";
  if (cap >= CAP_HIGH) return "cap-high";
  if (cap >= CAP_MID) return "cap-mid";
  return "cap-low";
}

// The endpoint's token (`topo run --http-token`): given once in the address as `#token=...`,
// kept for this tab in sessionStorage and taken out of the address bar, sent as a bearer token.
const TOKEN_KEY = "topo-token";

function token() {
  if (typeof location === "undefined") return null;
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** A request the endpoint refused for want of its token: the page says what to do. */
class NeedsToken extends Error {}

async function getJson(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
  const t = token();
  const headers = t ? { Authorization: `Bearer ${t}` } : {};
  try {
    const r = await fetch(path, { cache: "no-store", signal: ctl.signal, headers });
    if (r.status === 401) throw new NeedsToken(`${path}: HTTP 401`);
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return await r.json();
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- layout

/**
 * Positions of the components: layer = the longest path from a spout (spouts in layer 0), so
 * every edge goes left to right; inside a layer, nodes are ordered by the mean height of their
 * predecessors (the barycentre), which keeps edges short and mostly uncrossed.
 * Returns {nodes: Map id -> {x, y, layer, order}, extents: [{top, bottom}] per layer, width,
 * height}.
 */
export function layout(topology) {
  const ids = topology.components.map((c) => c.id);
  const index = new Map(ids.map((id, i) => [id, i]));
  const preds = new Map(ids.map((id) => [id, new Set()]));
  const succs = new Map(ids.map((id) => [id, new Set()]));
  for (const e of topology.edges) {
    if (!index.has(e.from) || !index.has(e.to) || e.from === e.to) continue;
    preds.get(e.to).add(e.from);
    succs.get(e.from).add(e.to);
  }
  // Longest path, in topological order (Kahn). A component on a cycle (the runtime does not
  // build those, but the page must not hang on one) goes one layer after its placed inputs.
  const layer = new Map();
  const indeg = new Map(ids.map((id) => [id, preds.get(id).size]));
  const ready = ids.filter((id) => indeg.get(id) === 0);
  for (const id of ready) layer.set(id, 0);
  for (let i = 0; i < ready.length; i++) {
    const id = ready[i];
    for (const s of succs.get(id)) {
      layer.set(s, Math.max(layer.get(s) ?? 0, layer.get(id) + 1));
      indeg.set(s, indeg.get(s) - 1);
      if (indeg.get(s) === 0) ready.push(s);
    }
  }
  for (const id of ids) {
    if (!layer.has(id)) {
      const placed = [...preds.get(id)].filter((p) => layer.has(p)).map((p) => layer.get(p));
      layer.set(id, placed.length ? Math.max(...placed) + 1 : 0);
    }
  }
  const depth = Math.max(0, ...layer.values());
  const layers = Array.from({ length: depth + 1 }, () => []);
  for (const id of ids) layers[layer.get(id)].push(id);

  const pos = new Map();
  const tallest = Math.max(1, ...layers.map((l) => l.length));
  const height = MARGIN * 2 + tallest * NODE_H + (tallest - 1) * ROW_GAP;
  const place = (members, l) => {
    const span = members.length * NODE_H + (members.length - 1) * ROW_GAP;
    const top = (height - span) / 2;
    members.forEach((id, order) => {
      pos.set(id, {
        layer: l,
        order,
        x: MARGIN + l * (NODE_W + COL_GAP),
        y: top + order * (NODE_H + ROW_GAP),
      });
    });
  };
  layers.forEach((members, l) => {
    if (l > 0) {
      const centre = (id) => {
        const ys = [...preds.get(id)].filter((p) => pos.has(p)).map((p) => pos.get(p).y);
        return ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length : Infinity;
      };
      const bary = new Map(members.map((id) => [id, centre(id)]));
      members.sort((a, b) => bary.get(a) - bary.get(b) || index.get(a) - index.get(b));
    }
    place(members, l);
  });
  const width = MARGIN * 2 + (depth + 1) * NODE_W + depth * COL_GAP;
  // The vertical extent of each layer's boxes, for edges routed around the layers they skip.
  const extents = layers.map((members) => ({
    top: Math.min(...members.map((id) => pos.get(id).y)),
    bottom: Math.max(...members.map((id) => pos.get(id).y + NODE_H)),
  }));
  return { nodes: pos, extents, width, height };
}

// ---------------------------------------------------------------- figures

/** The key of an edge in the maps below. */
export const edgeKey = (e) => `${e.from}\u0000${e.stream}\u0000${e.to}`;

/**
 * Tuples per second on each of the topology's `edges`, by edgeKey, from the endpoint's figures
 * (`figures.edges`); an edge the figures do not list carried nothing.
 */
export function edgeRates(edges, figures) {
  const rates = new Map(figures.edges.map((e) => [edgeKey(e), e.rate]));
  return new Map(edges.map((e) => [edgeKey(e), rates.get(edgeKey(e)) ?? 0]));
}

// ---------------------------------------------------------------- graph

function groupingLabel(e) {
  const g = e.fields && e.fields.length ? `${e.grouping}(${e.fields.join(", ")})` : e.grouping;
  return e.stream && e.stream !== "default" ? `${e.stream} · ${g}` : g;
}

/**
 * The path of an edge from component `a` to `b` (layout positions), leaving at (x1, y1) and
 * arriving at (x2, y2), and the middle of it for the labels: a curve between adjacent layers;
 * around the boxes of the layers in between (above or below them, whichever is nearer) when the
 * edge skips layers, so it never runs behind a component it does not touch.
 */
function route(extents, a, b, x1, y1, x2, y2) {
  if (b.layer - a.layer <= 1) {
    const dx = Math.max(40, (x2 - x1) / 2);
    return {
      d: `M ${x1} ${y1} C ${x1 + dx} ${y1}, ${x2 - dx} ${y2}, ${x2} ${y2}`,
      mx: (x1 + x2) / 2,
      my: (y1 + y2) / 2,
    };
  }
  const skipped = extents.slice(a.layer + 1, b.layer);
  const over = Math.min(...skipped.map((x) => x.top)) - 26;
  const under = Math.max(...skipped.map((x) => x.bottom)) + 26;
  const mid = (y1 + y2) / 2;
  const y = Math.abs(over - mid) < Math.abs(under - mid) ? over : under;
  const xa = x1 + COL_GAP / 2;
  const xb = x2 - COL_GAP / 2;
  const c = COL_GAP / 4;
  return {
    d: `M ${x1} ${y1} C ${x1 + c} ${y1}, ${xa - c} ${y}, ${xa} ${y} L ${xb} ${y} C ${xb + c} ${y}, ${x2 - c} ${y2}, ${x2} ${y2}`,
    mx: (xa + xb) / 2,
    my: y,
  };
}

/**
 * Where to put an edge's labels (the y of the line between them) centred at `x`, `width` wide,
 * wanting `y`: there, or below the labels in `placed` it would overlap. Records the choice.
 */
function labelSpot(placed, x, y, width) {
  const above = 21;
  const below = 24;
  let spot = y;
  for (let moved = true; moved; ) {
    moved = false;
    for (const p of placed) {
      const apartX = Math.abs(p.x - x) >= (p.width + width) / 2;
      const apartY = spot - above >= p.y + below || spot + below <= p.y - above;
      if (!apartX && !apartY) {
        spot = p.y + below + above + 2;
        moved = true;
      }
    }
  }
  placed.push({ x, y: spot, width });
  return spot;
}

function drawGraph() {
  const topo = state.topology;
  const root = $("graph");
  root.replaceChildren();
  const { nodes, extents, width, height } = layout(topo);
  const defs = svg("defs");
  const marker = svg("marker", {
    id: "arrow",
    viewBox: "0 0 10 10",
    refX: 9,
    refY: 5,
    markerWidth: 7,
    markerHeight: 7,
    orient: "auto-start-reverse",
    markerUnits: "userSpaceOnUse",
  });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }));
  defs.append(marker);
  root.append(defs);

  const edgeLayer = svg("g", { class: "edges" });
  const nodeLayer = svg("g", { class: "nodes" });
  root.append(edgeLayer, nodeLayer);

  // Parallel edges (one per stream) between the same pair are spread apart.
  const pairs = new Map();
  const edges = topo.edges.map((e) => {
    const pair = `${e.from}\u0000${e.to}`;
    const n = pairs.get(pair) ?? 0;
    pairs.set(pair, n + 1);
    return { e, n };
  });
  const drawnEdges = [];
  const placedLabels = [];
  let top = 0;
  let bottom = height;
  for (const { e, n } of edges) {
    const a = nodes.get(e.from);
    const b = nodes.get(e.to);
    if (!a || !b) continue;
    const spread = (pairs.get(`${e.from}\u0000${e.to}`) - 1) / 2;
    const off = (n - spread) * 12;
    const x1 = a.x + NODE_W;
    const y1 = a.y + NODE_H / 2 + off;
    const x2 = b.x - 2;
    const y2 = b.y + NODE_H / 2 + off;
    const g = svg("g", {
      class: "edge",
      "data-from": e.from,
      "data-to": e.to,
      "data-stream": e.stream,
      "data-grouping": e.grouping,
    });
    const { d, mx, my: wanted } = route(extents, a, b, x1, y1, x2, y2);
    const path = svg("path", { class: "edge-line", d, "marker-end": "url(#arrow)" });
    // The grouping above the curve's midpoint, the rate below it; moved down past the labels
    // already placed when they would overlap (edges fanning out of one component).
    const text = groupingLabel(e);
    const my = labelSpot(placedLabels, mx, wanted, Math.max(text.length, 9) * 6.6);
    top = Math.min(top, my - 34);
    bottom = Math.max(bottom, my + 34);
    const kind = svg("text", { class: "edge-label grouping", x: mx, y: my - 9, "text-anchor": "middle" }, text);
    const rate = svg("text", { class: "edge-label edge-rate", x: mx, y: my + 19, "text-anchor": "middle" }, "–");
    g.append(path, kind, rate);
    edgeLayer.append(g);
    drawnEdges.push({ e, g, path, rate });
  }

  // Edges routed around skipped layers may pass above or below the boxes.
  root.setAttribute("viewBox", `0 ${top} ${width} ${bottom - top}`);
  root.style.maxWidth = `${width}px`;

  const drawnNodes = new Map();
  for (const c of topo.components) {
    const p = nodes.get(c.id);
    const g = svg("g", {
      class: `node ${c.kind} cap-none`,
      transform: `translate(${p.x}, ${p.y})`,
      "data-component": c.id,
      "data-kind": c.kind,
      "data-parallelism": c.parallelism,
      "data-layer": p.layer,
      "data-rate": "",
      "data-capacity": "",
    });
    const badge = svg("g", { class: "badge", transform: `translate(${NODE_W / 2}, -13)` });
    badge.append(
      svg("rect", { x: -52, y: -11, width: 104, height: 20, rx: 10 }),
      svg("text", { "text-anchor": "middle", y: 3.5 }, "⚠ BOTTLENECK"),
    );
    const title = svg("title", {}, `${c.id} (${c.kind}, ${c.parallelism} tasks)`);
    const box = svg("rect", { class: "box", width: NODE_W, height: NODE_H, rx: 9 });
    const id = svg("text", { class: "id", x: 12, y: 21 }, c.id);
    const meta = svg("text", { class: "meta", x: NODE_W - 12, y: 21, "text-anchor": "end" },
      `${c.kind} ×${c.parallelism}`);
    const rate = svg("text", { class: "rate", x: 12, y: 45 }, "–");
    const detail = svg("text", { class: "detail", x: 12, y: 63 }, "");
    const barBg = svg("rect", { class: "capbar-bg", x: 0, y: NODE_H - 5, width: NODE_W, height: 5 });
    const bar = svg("rect", { class: "capbar", x: 0, y: NODE_H - 5, width: 0, height: 5 });
    const clip = svg("clipPath", { id: `clip-${drawnNodes.size}` });
    clip.append(svg("rect", { width: NODE_W, height: NODE_H, rx: 9 }));
    const bars = svg("g", { "clip-path": `url(#clip-${drawnNodes.size})` });
    bars.append(barBg, bar);
    defs.append(clip);
    g.append(title, box, bars, id, meta, rate, detail, badge);
    nodeLayer.append(g);
    drawnNodes.set(c.id, { g, rate, detail, bar });
  }
  state.graph = { nodes: drawnNodes, edges: drawnEdges };
}

function updateGraph(byId, rates, bottleneck) {
  for (const [id, n] of state.graph.nodes) {
    const s = byId.get(id);
    if (!s) continue;
    const cap = s.capacity;
    const isBottleneck = bottleneck !== null && bottleneck.id === id;
    n.g.setAttribute("class", `node ${s.kind} ${capClass(cap)}${isBottleneck ? " bottleneck" : ""}`);
    n.g.setAttribute("data-rate", s.rate.toFixed(2));
    n.g.setAttribute("data-capacity", cap.toFixed(3));
    n.g.setAttribute("data-queue-fill", s.queue_fill === null ? "" : s.queue_fill.toFixed(3));
    n.g.setAttribute("data-backpressure", s.backpressure.toFixed(3));
    n.rate.textContent = `${short(s.rate)} tuples/s`;
    // Capacity, queue fill and (when a task waits at all) backpressure, short enough to fit.
    const waits = s.backpressure >= 0.005;
    const parts = [`cap ${cap.toFixed(2)}`];
    if (s.queue_fill !== null) parts.push(`${waits ? "q" : "queue"} ${percent(s.queue_fill)}`);
    if (waits) parts.push(`bp ${percent(s.backpressure)}`);
    n.detail.textContent = parts.join(" · ");
    n.bar.setAttribute("width", String(NODE_W * cap));
  }
  const widths = [];
  for (const d of state.graph.edges) {
    const rate = rates.get(edgeKey(d.e)) ?? null;
    d.g.setAttribute("data-rate", rate === null ? "" : rate.toFixed(2));
    d.rate.textContent = rate === null ? "–" : `${short(rate)}/s`;
    widths.push([d.path, rate]);
  }
  const top = Math.max(1, ...widths.map(([, r]) => r ?? 0));
  for (const [path, r] of widths) {
    // Width grows with the log of the rate, from 1.5 to 5 px.
    const w = r ? 1.5 + 3.5 * (Math.log10(1 + r) / Math.log10(1 + top)) : 1.5;
    path.style.strokeWidth = `${w.toFixed(2)}px`;
  }
  const note = $("bottleneck-note");
  if (bottleneck) {
    note.hidden = false;
    note.replaceChildren(el("b", {}, "Bottleneck: "), el("code", {}, bottleneck.id), ` — ${bottleneck.why}`);
  } else {
    note.hidden = true;
  }
}

// ---------------------------------------------------------------- charts

/** Seconds the charts span: the history there is, up to HISTORY_S (at least 10 s). */
function chartSpan(tNow) {
  const first = state.series.length ? state.series[0].t : tNow;
  return Math.min(HISTORY_S, Math.max(10, tNow - first));
}

function spanText(span) {
  return span >= 90 ? `−${Math.round(span / 60)} min` : `−${Math.round(span)} s`;
}

/**
 * Draws `lines` ([{points: [{t, v}], cls, area}]) into `target` (an svg with a viewBox of
 * width × height) over the chart span before `tNow`; returns the top of the scale.
 */
function drawChart(target, lines, tNow, width, height) {
  const top = Math.max(1e-9, ...lines.flatMap((l) => l.points.map((p) => p.v ?? 0)));
  const scale = top * 1.1;
  const span = chartSpan(tNow);
  const x = (t) => ((t - (tNow - span)) / span) * width;
  const y = (v) => height - 2 - (v / scale) * (height - 4);
  target.replaceChildren();
  for (const l of lines) {
    const pts = l.points.filter((p) => p.v !== null && p.v !== undefined);
    if (pts.length === 0) continue;
    const d = pts.map((p, i) => `${i ? "L" : "M"} ${x(p.t).toFixed(1)} ${y(p.v).toFixed(1)}`).join(" ");
    if (l.area) {
      const first = x(pts[0].t).toFixed(1);
      const last = x(pts[pts.length - 1].t).toFixed(1);
      target.append(svg("path", { class: `area ${l.cls}`, d: `${d} L ${last} ${height} L ${first} ${height} Z` }));
    }
    target.append(svg("path", { class: `line ${l.cls}`, d, "vector-effect": "non-scaling-stroke" }));
  }
  return top;
}

function updateCharts(tNow, latencyLabel) {
  const pts = state.series;
  const top = drawChart(
    $("throughput-chart"),
    [
      { points: pts.map((p) => ({ t: p.t, v: p.emitted })), cls: "emitted", area: true },
      { points: pts.map((p) => ({ t: p.t, v: p.acked })), cls: "acked" },
    ],
    tNow,
    600,
    90,
  );
  $("throughput-max").textContent = `scale ${short(top)}/s`;
  for (const e of document.querySelectorAll(".axis .from")) e.textContent = spanText(chartSpan(tNow));
  const latTop = drawChart(
    $("latency-chart"),
    [{ points: pts.map((p) => ({ t: p.t, v: p.latency })), cls: "latency", area: true }],
    tNow,
    600,
    90,
  );
  $("latency-max").textContent = latTop > 1e-6 ? `scale ${micros(latTop)}` : "";
  $("latency-kind").textContent = latencyLabel;
  const last = pts[pts.length - 1];
  $("throughput-now").textContent = last && last.emitted !== null ? `${short(last.emitted)}/s` : "–";
  $("latency-now").textContent = last && last.latency !== null ? micros(last.latency) : "–";
}

function sparkline(points, tNow) {
  const s = svg("svg", { class: "sparkline", viewBox: "0 0 120 24", preserveAspectRatio: "none" });
  drawChart(s, [{ points, cls: "rate", area: true }], tNow, 120, 24);
  return s;
}

// ---------------------------------------------------------------- table

const COLUMNS = ["component", "tasks", "rate", "spark", "acked", "failed", "timedOut", "p50", "p99",
  "queue", "capacity", "backpressure", "errors"];

function row(id) {
  let r = state.rows.get(id);
  if (r) return r;
  const tr = el("tr", { "data-component": id });
  const cells = {};
  for (const c of COLUMNS) {
    const cls = { component: "component", tasks: "tasks", spark: "history" }[c] ?? `num ${c}`;
    cells[c] = el("td", { class: cls });
    tr.append(cells[c]);
  }
  $("components").tBodies[0].append(tr);
  r = { tr, cells };
  state.rows.set(id, r);
  return r;
}

function countCell(cell, totalValue, perSecond, bad) {
  const main = el("div", {}, short(totalValue));
  const sub = el("small", {}, perSecond === null ? "" : `${short(perSecond)}/s`);
  cell.replaceChildren(main, sub);
  cell.classList.toggle("bad", bad && totalValue > 0);
}

function updateTable(stats, bottleneck, tNow, figures) {
  for (const s of stats) {
    const { tr, cells } = row(s.id);
    tr.className = `${s.kind}${bottleneck && bottleneck.id === s.id ? " row-bottleneck" : ""}`;
    tr.setAttribute("data-rate", s.rate.toFixed(2));
    tr.setAttribute("data-capacity", s.capacity.toFixed(3));
    const dot = el("i", { class: `dot ${capClass(s.capacity)}` });
    const name = el("span", { class: "name" });
    name.append(dot, el("span", { class: "cid" }, s.id), el("span", { class: `kind ${s.kind}` }, s.kind));
    cells.component.replaceChildren(name);
    cells.tasks.textContent = String(s.tasks);
    cells.rate.textContent = short(s.rate);
    const points = state.series.map((p) => ({ t: p.t, v: p.rates.get(s.id) ?? null }));
    cells.spark.replaceChildren(sparkline(points, tNow));
    countCell(cells.acked, s.acked, s.acked_rate, false);
    countCell(cells.failed, s.failed, s.failed_rate, true);
    if (s.kind === "spout") countCell(cells.timedOut, s.timed_out, s.timed_out_rate, true);
    else cells.timedOut.textContent = "–";
    const since = figures.since_start ? "since start" : `last ${short(figures.window_s)} s`;
    cells.p50.textContent = micros(s.p50_us);
    cells.p50.title = `${s.kind === "spout" ? "complete" : "execute"} latency, ${since}`;
    cells.p99.textContent = micros(s.p99_us);
    cells.p99.title = cells.p50.title;
    if (s.queue_fill === null) {
      cells.queue.textContent = "–";
    } else {
      const meter = el("span", { class: "meter" });
      const fill = el("span", { class: `fill ${s.queue_fill > QUEUE_HIGH ? "high" : ""}` });
      fill.style.width = percent(Math.min(1, s.queue_fill));
      meter.append(fill);
      cells.queue.replaceChildren(meter, el("span", {}, percent(s.queue_fill)));
    }
    cells.capacity.replaceChildren(
      el("span", { class: `chip ${capClass(s.capacity)}` }, s.capacity.toFixed(2)),
    );
    cells.backpressure.textContent = percent(s.backpressure);
    countCell(cells.errors, s.errors, s.errors_rate, true);
  }
}

// ---------------------------------------------------------------- errors

function updateErrors(snap) {
  const list = $("errors");
  const none = $("no-errors");
  const errors = Array.isArray(snap.errors) ? snap.errors : [];
  if (errors.length === 0) {
    list.replaceChildren();
    none.hidden = false;
    state.lastErrorSeq = null;
    return;
  }
  none.hidden = true;
  const newest = errors[errors.length - 1].seq;
  if (newest === state.lastErrorSeq) return;
  state.lastErrorSeq = newest;
  const items = errors.slice(-50).reverse().map((e) => {
    const when = Number.isFinite(e.time_ms) ? new Date(e.time_ms).toLocaleTimeString() : "";
    const li = el("li", { class: `error level-${String(e.level ?? "error").toLowerCase()}` });
    li.append(
      el("time", {}, when),
      el("span", { class: "level" }, String(e.level ?? "error")),
      el("code", { class: "where" }, `${e.component} #${e.task}`),
      el("span", { class: "message" }, String(e.message ?? "")),
    );
    return li;
  });
  list.replaceChildren(...items);
}

// ---------------------------------------------------------------- polling

function setConnection(kind, text) {
  const c = $("connection");
  c.className = `connection ${kind}`;
  $("connection-text").textContent = text;
}

async function loadTopology() {
  state.topology = await getJson("api/topology");
  $("topology-name").textContent = state.topology.name;
  document.title = `${state.topology.name} · topo`;
  drawGraph();
}

/** Forgets the topology and its figures: the next poll starts over. */
function reset() {
  state.uptime = null;
  state.series = [];
  state.topology = null;
  state.graph = null;
  state.rows.clear();
  state.lastErrorSeq = null;
  $("graph").replaceChildren();
  $("bottleneck-note").hidden = true;
  $("components").tBodies[0].replaceChildren();
  $("uptime").textContent = "–";
}

/** Takes a new answer of /api/metrics; false when the topology restarted (all starts over). */
function ingest(snap) {
  const t = secs(snap.uptime);
  if (state.uptime !== null && t < state.uptime) {
    // The topology restarted: its counters and graph start over.
    reset();
    return false;
  }
  const fresh = state.uptime === null || t > state.uptime;
  state.uptime = t;
  return fresh;
}

/** The header's checkpoint figures: the newest completed one, and failures (if any). */
function updateCheckpoint(cp) {
  const box = $("checkpoint");
  if (!cp) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const failed = cp.failed > 0 ? ` · ${cp.failed} failed` : "";
  if (cp.last_id === null || cp.last_id === undefined) {
    box.textContent = `checkpoint: none yet${failed}`;
  } else {
    const ago = cp.since_last ? `${secs(cp.since_last).toFixed(1)} s ago` : "";
    box.textContent = `checkpoint ${cp.last_id} · ${micros(secs(cp.last_duration) * 1e6)} · ` +
      `pause ${micros(secs(cp.last_pause) * 1e6)} · ${ago}${failed}`;
  }
  box.classList.toggle("bad", cp.failed > 0);
}

function render(snap) {
  const t = state.uptime;
  const figures = snap.figures;
  const stats = figures.components;
  const byId = new Map(stats.map((s) => [s.id, s]));
  const bottleneck = figures.bottleneck;
  const rates = edgeRates(state.topology.edges, figures);

  // One chart point per poll: what the spouts emit and complete, and their p99 complete latency.
  const spouts = stats.filter((s) => s.kind === "spout");
  const sum = (f) => (spouts.length ? spouts.reduce((a, s) => a + f(s), 0) : null);
  const over = figures.since_start ? "since the start" : `over the last ${short(figures.window_s)} s`;
  state.series.push({
    t,
    emitted: sum((s) => s.rate),
    acked: sum((s) => s.acked_rate),
    latency: figures.complete_p99_us,
    rates: new Map(stats.map((s) => [s.id, s.rate])),
  });
  while (state.series.length && t - state.series[0].t > HISTORY_S) state.series.shift();

  $("uptime").textContent = uptimeText(t);
  updateGraph(byId, rates, bottleneck);
  updateTable(stats, bottleneck, t, figures);
  updateCharts(t, `p99 ${over}`);
  updateErrors(snap);
  updateCheckpoint(snap.checkpoints);
}

async function poll() {
  const started = performance.now();
  try {
    if (!state.topology) await loadTopology();
    const snap = await getJson(`api/metrics?window=${WINDOW_S}s`);
    if (ingest(snap)) {
      render(snap);
    }
    setConnection("live", "live");
  } catch (e) {
    if (e instanceof NeedsToken) {
      setConnection(
        "disconnected",
        "this endpoint needs its token: add #token=<token> to this page's address",
      );
    } else {
      setConnection("disconnected", "disconnected, retrying");
    }
    console.warn("dashboard poll failed:", e);
  } finally {
    const spent = performance.now() - started;
    setTimeout(poll, Math.max(100, POLL_MS - spent));
  }
}

if (typeof document !== "undefined") {
  poll();
}
