// Hand-made SVG charts: negative share over volume, with the detector's baseline and threshold.
const NS = "http://www.w3.org/2000/svg";

function node(tag, attrs, parent, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  if (parent) parent.appendChild(n);
  return n;
}

const pct = (v) => `${Math.round(v * 100)}%`;
const clock = (ms, seconds) =>
  new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: seconds ? "2-digit" : undefined, hour12: false });

function path(points) {
  // Gaps (null values) break the line instead of drawing through zero.
  let d = "";
  let pen = false;
  for (const p of points) {
    if (p === null) { pen = false; continue; }
    d += `${pen ? "L" : "M"}${p[0].toFixed(1)},${p[1].toFixed(1)}`;
    pen = true;
  }
  return d;
}

/** The smallest of 1, 2, 5, 10, 20, 50… that is at least v (a whole-number axis step). */
function niceStep(v) {
  if (v <= 1) return 1;
  const mag = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * mag >= v) return m * mag;
  return 10 * mag;
}

/**
 * Draw one rate series into an <svg>.
 * series: {points: [{start, end, total, negative, share, baseline, threshold}], alerted: Set<start>}
 */
export function drawRateChart(svg, series) {
  const width = svg.clientWidth || 800;
  const height = svg.clientHeight || 280;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const m = { l: 44, r: 48, t: 12, b: 26 };
  const w = width - m.l - m.r;
  const h = height - m.t - m.b;
  // Leading empty windows (before the first article) only squeeze the data to one side.
  const all = series.points || [];
  const first = all.findIndex((p) => p.total > 0);
  const pts = first < 0 ? [] : all.slice(Math.max(0, Math.min(first, all.length - 12)));
  if (!pts.length) {
    node("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, svg,
      "No articles in this window yet");
    return;
  }
  const t0 = Date.parse(pts[0].start);
  const t1 = Date.parse(pts[pts.length - 1].end);
  const withSeconds = t1 - t0 < 30 * 60 * 1000;
  const hhmm = (ms) => clock(ms, withSeconds);
  const x = (ms) => m.l + ((ms - t0) / Math.max(1, t1 - t0)) * w;
  const volMax = 4 * niceStep(Math.max(...pts.map((p) => p.total)) / 4);  // 4 gridlines
  // Share axis: 50%, 75% or 100% on top, so gridlines land on round numbers.
  const peak = Math.max(...pts.map((p) => Math.max(p.share ?? 0, p.threshold ?? 0, p.baseline ?? 0)));
  const shareTop = Math.min(1, Math.max(0.5, Math.ceil(peak * 1.05 * 4) / 4));
  const yShare = (v) => m.t + h - (Math.min(v, shareTop) / shareTop) * h;
  const yVol = (v) => m.t + h - (v / volMax) * h;

  const grid = node("g", {}, svg);
  for (let i = 0; i <= 4; i++) {
    const v = (shareTop * i) / 4;
    const y = yShare(v);
    node("line", { x1: m.l, x2: m.l + w, y1: y, y2: y, class: "grid-line" }, grid);
    node("text", { x: m.l - 6, y: y + 4, "text-anchor": "end" }, grid, pct(v));
    node("text", { x: m.l + w + 6, y: y + 4 }, grid, Math.round((volMax * i) / 4));
  }
  const ticks = Math.min(7, pts.length);
  for (let i = 0; i < ticks; i++) {
    const ms = t0 + ((t1 - t0) * i) / Math.max(1, ticks - 1);
    node("text", { x: x(ms), y: height - 6, "text-anchor": i === 0 ? "start" : i === ticks - 1 ? "end" : "middle" },
      grid, hhmm(ms));
  }

  const bars = node("g", {}, svg);
  const alerted = series.alerted || new Set();
  for (const p of pts) {
    const xs = x(Date.parse(p.start));
    const bw = Math.max(1, x(Date.parse(p.end)) - xs - 2);
    const r = node("rect", {
      x: xs + 1, y: yVol(p.total), width: bw, height: Math.max(0, m.t + h - yVol(p.total)),
      class: alerted.has(p.start) ? "bar alerted" : "bar",
    }, bars);
    node("title", {}, r, `${hhmm(Date.parse(p.start))}: ${p.negative}/${p.total} negative`);
  }

  const mid = (p) => x((Date.parse(p.start) + Date.parse(p.end)) / 2);
  const line = pts.map((p) => (p.share === null ? null : [mid(p), yShare(p.share)]));
  const firstX = line.find((p) => p)?.[0];
  const area = path(line);
  if (area && firstX !== undefined) {
    const last = [...line].reverse().find((p) => p);
    node("path", { d: `${area}L${last[0]},${m.t + h}L${firstX},${m.t + h}Z`, class: "share-area" }, svg);
  }
  node("path", { d: path(line), class: "share" }, svg);
  node("path", { d: path(pts.map((p) => (p.baseline == null ? null : [mid(p), yShare(p.baseline)]))), class: "baseline" }, svg);
  node("path", { d: path(pts.map((p) => (p.threshold == null ? null : [mid(p), yShare(p.threshold)]))), class: "threshold" }, svg);

  // Hover read-out: the window under the pointer.
  const cursor = node("line", { y1: m.t, y2: m.t + h, class: "cursor", visibility: "hidden" }, svg);
  const tip = node("g", { class: "tip", visibility: "hidden" }, svg);
  const tipBg = node("rect", { rx: 4, class: "tip-bg", width: 178, height: 50 }, tip);
  const tipText = [0, 1, 2].map((i) => node("text", { x: 8, y: 16 + i * 14 }, tip));
  svg.onmousemove = (ev) => {
    const box = svg.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * width;
    const p = pts.reduce((a, b) => (Math.abs(mid(b) - px) < Math.abs(mid(a) - px) ? b : a));
    const cx = mid(p);
    cursor.setAttribute("x1", cx);
    cursor.setAttribute("x2", cx);
    tip.setAttribute("transform", `translate(${Math.min(cx + 8, width - 186)},${m.t + 4})`);
    tipText[0].textContent = `${hhmm(Date.parse(p.start))}–${hhmm(Date.parse(p.end))}`;
    tipText[1].textContent = `negative ${p.share === null ? "–" : pct(p.share)} (${p.negative}/${p.total})`;
    tipText[2].textContent = p.baseline == null ? "" : `baseline ${pct(p.baseline)}, threshold ${pct(p.threshold ?? 0)}`;
    tipBg.setAttribute("height", p.baseline == null ? 36 : 50);
    cursor.setAttribute("visibility", "visible");
    tip.setAttribute("visibility", "visible");
  };
  svg.onmouseleave = () => {
    cursor.setAttribute("visibility", "hidden");
    tip.setAttribute("visibility", "hidden");
  };
}

/** A small share line over volume bars, for the per-topic grid. */
export function drawSpark(svg, points) {
  const width = 160;
  const height = 32;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  if (!points.length) return;
  const n = points.length;
  const volMax = Math.max(1, ...points.map((p) => p.total));
  const bw = width / n;
  points.forEach((p, i) => {
    const bh = (p.total / volMax) * (height * 0.45);
    node("rect", { x: i * bw, y: height - bh, width: Math.max(0.5, bw - 0.5), height: bh, class: "s-vol" }, svg);
  });
  const line = points.map((p, i) => (p.share === null ? null : [i * bw + bw / 2, height - 1 - p.share * (height - 2)]));
  node("path", { d: path(line), class: "s-line" }, svg);
}
