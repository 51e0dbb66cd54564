// The live dashboard of a running topology (served by `topo run --http ADDR` at `/`).
//
//   /api/topology (once) ──► layout(): layers by the longest path from the spouts, each layer
//                            ordered by the barycentre of its predecessors ──► drawGraph()
//   /api/metrics (every second) ──► history of snapshots ──► componentStats(): rates, capacity,
//                            queue fill, backpressure and latencies from the deltas between the
//                            newest snapshot and the one WINDOW_S seconds before it
//                            ──► graph colours, bottleneck, table, sparklines, errors
//
// Every figure comes from the exact cumulative counters of /api/metrics; nothing is sampled on
// the server and no state is kept there. Fields the runtime may add later are optional here:
// `edges` (exact tuples per edge), latency `buckets` with `latency_bounds_us`, and `errors`.

const POLL_MS = 1000;
// Rates and capacities are taken over this many seconds: tasks add their counts and busy time
// once per batch, so a one-second delta of a slow stage jumps between 0 and several seconds'
// worth; five seconds keep the figures steady and still live.
const WINDOW_S = 5;
// Sparklines and charts show this many seconds.
const HISTORY_S = 300;
const CAP_MID = 0.3;
const CAP_HIGH = 0.7;
const QUEUE_BOTTLENECK = 0.5;
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
  /** Recent snapshots, oldest first: {t: uptime in seconds, snap}. */
  snapshots: [],
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

const clamp01 = (x) => Math.min(1, Math.max(0, x));

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

async function getJson(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
  try {
    const r = await fetch(path, { cache: "no-store", signal: ctl.signal });
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

/** Sums `f` over the tasks of a component snapshot (0 without one). */
function total(c, f) {
  return c ? c.tasks.reduce((a, t) => a + f(t), 0) : 0;
}

/** A counter's increase, or its value when the counters restarted. */
function delta(now, before) {
  return now >= before ? now - before : now;
}

/**
 * A quantile (0..1) of latencies from bucket deltas, in whole µs: `now` and `before` are
 * cumulative counts at `bounds` (counts of latencies at or below each bound, growing over time);
 * `count` is all latencies in the window (some may lie above the last bound: then `max_us`
 * answers). Inside its bucket the quantile is interpolated linearly, as Prometheus's
 * histogram_quantile and `topo top` do.
 */
export function bucketQuantile(q, bounds, now, before, count, maxUs) {
  if (!count) return null;
  const want = q * count;
  let below = 0;
  for (let i = 0; i < bounds.length; i++) {
    const c = delta(now[i] ?? 0, before ? (before[i] ?? 0) : 0);
    if (c >= want) {
      const lower = i === 0 ? 0 : bounds[i - 1];
      const share = Math.min(1, Math.max(0, (want - below) / Math.max(1, c - below)));
      return Math.round(lower + (bounds[i] - lower) * share);
    }
    below = c;
  }
  return maxUs;
}

/** The latency summary a component is judged by: spouts complete, bolts execute. */
function latencyOf(kind, task) {
  return kind === "spout" ? task.complete_latency : task.execute_latency;
}

/**
 * The figures of one component between snapshot components `c` (now) and `p` (before, may be
 * missing), `dt` seconds apart; `bounds` are the snapshot's `latency_bounds_us`, if any.
 */
export function componentStats(c, p, dt, bounds) {
  const before = new Map(p ? p.tasks.map((t) => [t.task, t]) : []);
  const per = (f) => (dt > 0 && p ? delta(total(c, f), total(p, f)) / dt : null);
  const count = c.kind === "spout" ? (t) => t.emitted : (t) => t.executed;
  let capacity = null;
  let backpressure = null;
  let queueFill = null;
  let latCount = 0;
  let latSum = 0;
  let bucketsNow = null;
  let bucketsBefore = null;
  let maxUs = 0;
  for (const t of c.tasks) {
    const b = before.get(t.task);
    if (b && dt > 0) {
      capacity = Math.max(capacity ?? 0, clamp01(delta(secs(t.busy), secs(b.busy)) / dt));
      backpressure = Math.max(
        backpressure ?? 0,
        clamp01(delta(secs(t.backpressure), secs(b.backpressure)) / dt),
      );
    }
    if (t.queue_capacity > 0) {
      queueFill = Math.max(queueFill ?? 0, t.queue_len / t.queue_capacity);
    }
    const l = latencyOf(c.kind, t);
    const lb = b ? latencyOf(c.kind, b) : null;
    const n = delta(l.count, lb ? lb.count : 0);
    latCount += n;
    latSum += Math.max(0, l.mean_us * l.count - (lb && l.count >= lb.count ? lb.mean_us * lb.count : 0));
    maxUs = Math.max(maxUs, l.max_us);
    if (bounds && Array.isArray(l.buckets)) {
      bucketsNow = bucketsNow ?? bounds.map(() => 0);
      bucketsBefore = bucketsBefore ?? bounds.map(() => 0);
      l.buckets.forEach((v, i) => (bucketsNow[i] += v));
      if (lb && Array.isArray(lb.buckets)) lb.buckets.forEach((v, i) => (bucketsBefore[i] += v));
    }
  }
  if (capacity === null) {
    // The first snapshot: the share of the whole uptime.
    capacity = c.tasks.reduce((a, t) => Math.max(a, t.busy_fraction), 0);
  }
  // Since start: p50 weighted by each task's count, p99 of the slowest task.
  const lats = c.tasks.map((t) => latencyOf(c.kind, t)).filter((l) => l.count > 0);
  const lifeCount = lats.reduce((a, l) => a + l.count, 0);
  const lifeP50 = lifeCount ? lats.reduce((a, l) => a + l.p50_us * l.count, 0) / lifeCount : null;
  const lifeP99 = lats.length ? Math.max(...lats.map((l) => l.p99_us)) : null;
  const windowed = bucketsNow && p && latCount > 0;
  return {
    id: c.id,
    kind: c.kind,
    tasks: c.tasks.length,
    rate: per(count),
    transferredRate: per((t) => t.transferred),
    acked: total(c, (t) => t.acked),
    ackedRate: per((t) => t.acked),
    failed: total(c, (t) => t.failed),
    failedRate: per((t) => t.failed),
    timedOut: total(c, (t) => t.timed_out),
    timedOutRate: per((t) => t.timed_out),
    errors: total(c, (t) => t.errors),
    errorsRate: per((t) => t.errors),
    pending: total(c, (t) => t.pending),
    capacity,
    backpressure,
    queueFill,
    p50: windowed ? bucketQuantile(0.5, bounds, bucketsNow, bucketsBefore, latCount, maxUs) : lifeP50,
    p99: windowed ? bucketQuantile(0.99, bounds, bucketsNow, bucketsBefore, latCount, maxUs) : lifeP99,
    latencyWindowed: Boolean(windowed),
    windowMeanUs: p && latCount > 0 ? latSum / latCount : null,
    windowLatCount: latCount,
    bucketsNow,
    bucketsBefore,
    maxUs,
  };
}

/** The snapshot to take deltas from: the oldest within WINDOW_S of the newest. */
function baseSnapshot() {
  const s = state.snapshots;
  const now = s[s.length - 1];
  for (let i = 0; i < s.length - 1; i++) {
    if (now.t - s[i].t <= WINDOW_S + 0.25) return s[i];
  }
  return s.length > 1 ? s[s.length - 2] : null;
}

/**
 * The bottleneck: the bolt with the highest capacity when it is at least CAP_HIGH, else
 * the one whose queues are fullest when they are more than half full; null when neither.
 * Capacities within 0.01 of each other count as equal (a saturated stage and the stage feeding
 * it can both read 1.00): then the one that waits less for its downstream queues wins, as the
 * other is held up by it.
 */
export function findBottleneck(stats) {
  let busiest = null;
  let fullest = null;
  const cap = (s) => s.capacity ?? 0;
  for (const s of stats) {
    // A spout's busy time includes what next_tuple awaits (a paced or idle source looks busy),
    // so capacity names bolts only, as in Storm's UI and `topo top`.
    if (s.kind !== "spout") {
      const gap = busiest === null ? 1 : cap(s) - cap(busiest);
      const waitsLess = busiest !== null && (s.backpressure ?? 0) < (busiest.backpressure ?? 0);
      if (gap >= 0.01 || (Math.abs(gap) < 0.01 && waitsLess)) busiest = s;
    }
    if (fullest === null || (s.queueFill ?? 0) > (fullest.queueFill ?? 0)) fullest = s;
  }
  if (busiest && (busiest.capacity ?? 0) >= CAP_HIGH) {
    return {
      id: busiest.id,
      why: `capacity ${busiest.capacity.toFixed(2)}: busy ${percent(busiest.capacity)} of the last ${WINDOW_S} s`,
    };
  }
  if (fullest && (fullest.queueFill ?? 0) > QUEUE_BOTTLENECK) {
    return { id: fullest.id, why: `receive queue ${percent(fullest.queueFill)} full` };
  }
  return null;
}

/** The key of an edge in the maps below. */
export const edgeKey = (e) => `${e.from}\u0000${e.stream}\u0000${e.to}`;

/**
 * Tuples per second on each of the topology's `edges`, by edgeKey: exact from the snapshots'
 * `edges` when the runtime reports them, else the upstream component's transferred rate
 * (from `byId`, its componentStats) divided over its out-edges, marked estimated.
 */
export function edgeRates(edges, now, before, dt, byId) {
  const out = new Map();
  const key = edgeKey;
  if (Array.isArray(now.edges)) {
    const prev = new Map((before && Array.isArray(before.edges) ? before.edges : []).map((e) => [key(e), e]));
    const cur = new Map(now.edges.map((e) => [key(e), e]));
    for (const e of edges) {
      const c = cur.get(key(e));
      const p = prev.get(key(e));
      out.set(key(e), {
        rate: c && p && dt > 0 ? delta(c.transferred, p.transferred) / dt : c ? null : 0,
        estimated: false,
      });
    }
    return out;
  }
  const fanout = new Map();
  for (const e of edges) fanout.set(e.from, (fanout.get(e.from) ?? 0) + 1);
  for (const e of edges) {
    const s = byId.get(e.from);
    const r = s && s.transferredRate !== null ? s.transferredRate / fanout.get(e.from) : null;
    out.set(key(e), { rate: r, estimated: true });
  }
  return out;
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
    n.g.setAttribute("data-rate", s.rate === null ? "" : s.rate.toFixed(2));
    n.g.setAttribute("data-capacity", cap === null ? "" : cap.toFixed(3));
    n.g.setAttribute("data-queue-fill", s.queueFill === null ? "" : s.queueFill.toFixed(3));
    n.g.setAttribute("data-backpressure", s.backpressure === null ? "" : s.backpressure.toFixed(3));
    n.rate.textContent = s.rate === null ? "–" : `${short(s.rate)} tuples/s`;
    // Capacity, queue fill and (when a task waits at all) backpressure, short enough to fit.
    const waits = s.backpressure !== null && s.backpressure >= 0.005;
    const parts = [`cap ${cap === null ? "–" : cap.toFixed(2)}`];
    if (s.queueFill !== null) parts.push(`${waits ? "q" : "queue"} ${percent(s.queueFill)}`);
    if (waits) parts.push(`bp ${percent(s.backpressure)}`);
    n.detail.textContent = parts.join(" · ");
    n.bar.setAttribute("width", String(NODE_W * (cap ?? 0)));
  }
  const widths = [];
  for (const d of state.graph.edges) {
    const r = rates.get(edgeKey(d.e));
    const rate = r ? r.rate : null;
    d.g.setAttribute("data-rate", rate === null ? "" : rate.toFixed(2));
    d.g.setAttribute("data-estimated", r && r.estimated ? "true" : "false");
    d.rate.textContent = rate === null ? "–" : `${r.estimated ? "≈ " : ""}${short(rate)}/s`;
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

function updateTable(stats, bottleneck, tNow) {
  for (const s of stats) {
    const { tr, cells } = row(s.id);
    tr.className = `${s.kind}${bottleneck && bottleneck.id === s.id ? " row-bottleneck" : ""}`;
    tr.setAttribute("data-rate", s.rate === null ? "" : s.rate.toFixed(2));
    tr.setAttribute("data-capacity", s.capacity === null ? "" : s.capacity.toFixed(3));
    const dot = el("i", { class: `dot ${capClass(s.capacity)}` });
    const name = el("span", { class: "name" });
    name.append(dot, el("span", { class: "cid" }, s.id), el("span", { class: `kind ${s.kind}` }, s.kind));
    cells.component.replaceChildren(name);
    cells.tasks.textContent = String(s.tasks);
    cells.rate.textContent = s.rate === null ? "–" : short(s.rate);
    const points = state.series.map((p) => ({ t: p.t, v: p.rates.get(s.id) ?? null }));
    cells.spark.replaceChildren(sparkline(points, tNow));
    countCell(cells.acked, s.acked, s.ackedRate, false);
    countCell(cells.failed, s.failed, s.failedRate, true);
    if (s.kind === "spout") countCell(cells.timedOut, s.timedOut, s.timedOutRate, true);
    else cells.timedOut.textContent = "–";
    const since = s.latencyWindowed ? `last ${WINDOW_S} s` : "since start";
    cells.p50.textContent = micros(s.p50);
    cells.p50.title = `${s.kind === "spout" ? "complete" : "execute"} latency, ${since}`;
    cells.p99.textContent = micros(s.p99);
    cells.p99.title = cells.p50.title;
    if (s.queueFill === null) {
      cells.queue.textContent = "–";
    } else {
      const meter = el("span", { class: "meter" });
      const fill = el("span", { class: `fill ${s.queueFill > QUEUE_BOTTLENECK ? "high" : ""}` });
      fill.style.width = percent(Math.min(1, s.queueFill));
      meter.append(fill);
      cells.queue.replaceChildren(meter, el("span", {}, percent(s.queueFill)));
    }
    cells.capacity.replaceChildren(
      el("span", { class: `chip ${capClass(s.capacity)}` }, s.capacity === null ? "–" : s.capacity.toFixed(2)),
    );
    cells.backpressure.textContent = s.backpressure === null ? "–" : percent(s.backpressure);
    countCell(cells.errors, s.errors, s.errorsRate, true);
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
  state.snapshots = [];
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

function ingest(snap) {
  const t = secs(snap.uptime);
  const last = state.snapshots[state.snapshots.length - 1];
  if (last && t < last.t) {
    // The topology restarted: its counters and graph start over.
    reset();
    return false;
  }
  if (last && t === last.t) return true;
  state.snapshots.push({ t, snap });
  while (state.snapshots.length > 2 && t - state.snapshots[1].t > WINDOW_S + 1) state.snapshots.shift();
  return true;
}

function render() {
  const now = state.snapshots[state.snapshots.length - 1];
  const base = baseSnapshot();
  const dt = base ? now.t - base.t : 0;
  const bounds = Array.isArray(now.snap.latency_bounds_us) ? now.snap.latency_bounds_us : null;
  const stats = now.snap.components.map((c) =>
    componentStats(c, base ? base.snap.components.find((p) => p.id === c.id) : null, dt, bounds),
  );
  const byId = new Map(stats.map((s) => [s.id, s]));
  const inGraph = stats.filter((s) => state.graph.nodes.has(s.id));
  const bottleneck = base ? findBottleneck(inGraph) : null;
  const rates = edgeRates(state.topology.edges, now.snap, base ? base.snap : null, dt, byId);

  // One chart point per poll.
  const spouts = stats.filter((s) => s.kind === "spout");
  const sum = (f) => (spouts.length && spouts.every((s) => f(s) !== null) ? spouts.reduce((a, s) => a + f(s), 0) : null);
  let latency = null;
  let latencyLabel = `mean over the last ${WINDOW_S} s`;
  const latCount = spouts.reduce((a, s) => a + s.windowLatCount, 0);
  if (bounds && spouts.length && spouts.every((s) => s.bucketsNow) && latCount > 0 && base) {
    const nowB = bounds.map((_, i) => spouts.reduce((a, s) => a + s.bucketsNow[i], 0));
    const beforeB = bounds.map((_, i) => spouts.reduce((a, s) => a + s.bucketsBefore[i], 0));
    latency = bucketQuantile(0.99, bounds, nowB, beforeB, latCount, Math.max(...spouts.map((s) => s.maxUs)));
    latencyLabel = `p99 over the last ${WINDOW_S} s`;
  } else if (latCount > 0) {
    latency = spouts.reduce((a, s) => a + (s.windowMeanUs ?? 0) * s.windowLatCount, 0) / latCount;
  }
  if (base) {
    state.series.push({
      t: now.t,
      emitted: sum((s) => s.rate),
      acked: sum((s) => s.ackedRate),
      latency,
      rates: new Map(stats.map((s) => [s.id, s.rate])),
    });
    while (state.series.length && now.t - state.series[0].t > HISTORY_S) state.series.shift();
  }

  $("uptime").textContent = uptimeText(now.t);
  updateGraph(byId, rates, bottleneck);
  updateTable(stats, bottleneck, now.t);
  updateCharts(now.t, latencyLabel);
  updateErrors(now.snap);
}

async function poll() {
  const started = performance.now();
  try {
    if (!state.topology) await loadTopology();
    const snap = await getJson("api/metrics");
    if (ingest(snap)) {
      render();
    }
    setConnection("live", "live");
  } catch (e) {
    setConnection("disconnected", "disconnected, retrying");
    console.warn("dashboard poll failed:", e);
  } finally {
    const spent = performance.now() - started;
    setTimeout(poll, Math.max(100, POLL_MS - spent));
  }
}

if (typeof document !== "undefined") {
  poll();
}
