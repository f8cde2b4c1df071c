// The finpulse dashboard: overview with drill-down, search, alert actions and label feedback.
import { api, listen } from "./api.js";
import { drawRateChart, drawSpark } from "./chart.js";

const $ = (sel) => document.querySelector(sel);
const SCOPE_NAMES = { global: "Market", topic: "Topic", ticker: "Ticker", source: "Source" };
const DURATIONS = [["900", "15 minutes"], ["3600", "1 hour"], ["14400", "4 hours"], ["86400", "1 day"], ["604800", "7 days"]];
const state = {
  view: "overview",
  scope: "global",
  key: "all",
  facets: { topics: [], tickers: [], sources: [] },
  model: null,
  firing: [],
  page: 1,
  pages: 1,
  seen: new Set(),
  feedbackFor: null,
  silenceFor: null,
};

/** Build DOM without innerHTML, so article text can never become markup. */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`);
const when = (iso) =>
  new Date(iso).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const scopeLabel = (scope, key) => (scope === "global" ? "Market" : `${SCOPE_NAMES[scope]}: ${key}`);

/** Re-render a live list without losing the keyboard user's place in it. */
function keepFocus(container, render) {
  const active = document.activeElement;
  const key = container.contains(active) ? active.dataset.key : null;
  render();
  if (key) container.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

let toastTimer;
function toast(message, error = false) {
  const t = $("#toast");
  t.textContent = message;
  t.className = `toast show${error ? " error" : ""}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.className = "toast"), 3500);
}

async function guarded(fn) {
  try {
    return await fn();
  } catch (err) {
    toast(err.message, true);
    return undefined;
  }
}

// ---------- routing ----------
function route() {
  const [view, query] = (location.hash.replace(/^#\/?/, "") || "overview").split("?");
  state.view = ["overview", "search", "alerts"].includes(view) ? view : "overview";
  const params = new URLSearchParams(query || "");
  if (state.view === "overview") {
    state.scope = params.get("scope") || "global";
    state.key = state.scope === "global" ? "all" : params.get("key") || "";
  }
  for (const v of ["overview", "search", "alerts"]) $(`#view-${v}`).hidden = v !== state.view;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === state.view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (state.view === "overview") {
    syncScopeForm();
    refreshOverview();
  } else if (state.view === "alerts") refreshAlertsView();
  else if (state.view === "search" && !$("#results").childElementCount) runSearch(1);
}

function drill(scope, key) {
  location.hash = scope === "global" ? "#/overview" : `#/overview?scope=${scope}&key=${encodeURIComponent(key)}`;
}

// ---------- facets & model ----------
function fillSelect(select, values, keep) {
  const current = keep ? select.value : null;
  const fixed = [...select.querySelectorAll("option[value='']")];
  select.replaceChildren(...fixed, ...values.map((v) => h("option", { value: v }, v)));
  if (current !== null && [...select.options].some((o) => o.value === current)) select.value = current;
}

async function loadFacets() {
  const f = await guarded(() => api("/api/facets"));
  if (!f) return;
  state.facets = f;
  for (const sel of document.querySelectorAll("select[data-facet]")) fillSelect(sel, f[sel.dataset.facet], true);
  $("#tickers").replaceChildren(...f.tickers.map((v) => h("option", { value: v })));
  $("#sources").replaceChildren(...f.sources.map((v) => h("option", { value: v })));
  syncScopeForm();
}

async function loadModel() {
  const m = await guarded(() => api("/api/model"));
  if (!m) return;
  state.model = m;
  const toy = m.generated_data ? " (trained on generated data: not a real model)" : "";
  $("#model").textContent = m.version ? `model ${m.version}${toy}` : "no model";
  $("#model").title = m.version ? modelSummary(m) : "";
}

// Hover text of the model badge: validation numbers and the data they were measured on.
function modelSummary(m) {
  const h = m.metrics?.headline || {};
  const nums = ["topic", "sentiment"]
    .filter((t) => h[t])
    .map((t) => `${t} acc ${h[t].accuracy} / macro-F1 ${h[t].macro_f1}`);
  const origin = m.origin?.kind === "imported" ? `imported from ${m.origin.from}` : m.origin?.kind;
  const data = `measured on ${m.metrics_data || "data not recorded"}`;
  const s = m.scoring || {};
  const path = s.path ? `scores with ${s.path} (${s.dtype_policy}) on ${s.host}: ${s.reason}` : "";
  return [`${m.method} ${origin || ""}`.trim(), ...nums, data, path].filter(Boolean).join("\n");
}

function syncScopeForm() {
  $("#scope").value = state.scope;
  const keyLabel = $("#key-label");
  keyLabel.hidden = state.scope === "global";
  if (state.scope === "global") return;
  const values = state.facets[`${state.scope}s`] || [];
  const keys = values.includes(state.key) || !state.key ? values : [state.key, ...values];
  fillSelect($("#key"), keys, false);
  if (!state.key && keys.length) state.key = keys[0];
  $("#key").value = state.key;
}

// ---------- overview ----------
let refreshing = false;
let refreshAgain = false;

async function refreshOverview() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  try {
    await Promise.all([refreshChart(), refreshTopics(), refreshLatest()]);
  } finally {
    refreshing = false;
    if (refreshAgain) {
      refreshAgain = false;
      refreshOverview();
    }
  }
}

async function refreshChart() {
  if (state.scope !== "global" && !state.key) return;
  const q = new URLSearchParams({ scope: state.scope, key: state.key });
  const r = await guarded(() => api(`/api/rates?${q}`));
  if (!r) return;
  $("#chart-title").textContent = `${scopeLabel(state.scope, state.key)}: negative share and volume`;
  const alerted = new Set();
  for (const a of state.firing.filter((a) => a.scope === state.scope && a.key === state.key)) {
    for (const p of r.points) if (p.start >= a.window_start && p.start < a.window_end) alerted.add(p.start);
  }
  drawRateChart($("#chart"), { points: r.points, alerted });
  // The newest window is still filling up: the KPI reads the last complete one.
  const closed = r.points.slice(0, -1).filter((p) => p.total > 0);
  const last = closed[closed.length - 1];
  const total = r.points.reduce((s, p) => s + p.total, 0);
  const neg = r.points.reduce((s, p) => s + p.negative, 0);
  $("#kpis").replaceChildren(
    kpi(pct(last?.share), "negative, last full window"),
    kpi(pct(total ? neg / total : null), `negative, last ${r.points.length} windows`),
    kpi(total.toLocaleString(), "articles"),
  );
}

const kpi = (value, label) => h("div", { class: "kpi" }, h("b", {}, value), h("span", {}, label));

async function refreshTopics() {
  const r = await guarded(() => api("/api/rates/by-key?scope=topic"));
  if (!r) return;
  const hot = new Set(state.firing.filter((a) => a.scope === "topic").map((a) => a.key));
  const list = $("#topics");
  const items = r.keys.map((k) => {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("aria-hidden", "true");
    drawSpark(svg, k.points);
    const selected = state.scope === "topic" && state.key === k.key;
    return h("li", { class: hot.has(k.key) ? "alerting" : "" },
      h("button", { type: "button", class: selected ? "selected" : "", "aria-pressed": String(selected),
        onclick: () => drill("topic", k.key), title: `Drill down into ${k.key}`, "data-key": `topic:${k.key}` },
        h("span", { class: "name" }, k.key),
        h("span", { class: "val" }, pct(k.recent_share), h("small", {}, `${k.total} articles`)),
        svg));
  });
  keepFocus(list, () => list.replaceChildren(...(items.length ? items : [h("li", { class: "empty-note" }, "No articles yet.")])));
}

async function refreshLatest() {
  const q = new URLSearchParams({ size: "12" });
  if (state.scope !== "global" && state.key) q.set(state.scope, state.key);
  const r = await guarded(() => api(`/api/articles?${q}`));
  if (!r) return;
  $("#latest-title").textContent = state.scope === "global" ? "Latest articles" : `Latest articles: ${scopeLabel(state.scope, state.key)}`;
  keepFocus($("#latest"), () => renderArticles($("#latest"), r.items, true));
}

function badge(kind, label, conf, onclick, key) {
  const inner = [label, conf !== undefined ? h("span", { class: "conf" }, pct(conf)) : null];
  const title = conf !== undefined ? `${label}, model confidence ${pct(conf)}` : label;
  return onclick
    ? h("button", { type: "button", class: `badge ${kind}`, title: `${title}. Drill down`, onclick, "data-key": key }, ...inner)
    : h("span", { class: `badge ${kind}`, title }, ...inner);
}

function renderArticles(list, items, markFresh) {
  if (!items.length) {
    list.replaceChildren(h("li", { class: "empty-note" }, "No articles match."));
    return;
  }
  list.replaceChildren(...items.map((a) => {
    const fresh = markFresh && state.seen.size && !state.seen.has(a.id);
    if (markFresh) state.seen.add(a.id);
    const title = a.url
      ? h("a", { class: "title", href: a.url, target: "_blank", rel: "noopener noreferrer", "data-key": `${a.id}:link` }, a.title)
      : h("span", { class: "title" }, a.title);
    return h("li", { class: fresh ? "fresh" : "", "data-id": a.id },
      title,
      h("div", { class: "meta" },
        h("button", { type: "button", class: "link", onclick: () => drill("source", a.source), title: "Drill down into this source", "data-key": `${a.id}:source` }, a.source),
        h("time", { datetime: a.published_at }, when(a.published_at)),
        ...a.tickers.map((t) => h("button", { type: "button", class: "chip", onclick: () => drill("ticker", t), title: `Drill down into ${t}`, "data-key": `${a.id}:t:${t}` }, `$${t}`)),
        h("button", { type: "button", class: "link", onclick: () => openFeedback(a), "data-key": `${a.id}:fb` }, "Wrong label?")),
      h("div", { class: "badges" },
        badge("topic", a.topic, a.topic_probs[a.topic], () => drill("topic", a.topic), `${a.id}:topic`),
        badge(a.sentiment, a.sentiment, a.sentiment_probs[a.sentiment])));
  }));
}

// ---------- alerts ----------
function renderAlert(a) {
  const acked = Boolean(a.ack);
  return h("li", { class: `alert${acked ? " acked" : ""}`, "data-id": a.id },
    h("h3", {}, `${scopeLabel(a.scope, a.key)}`),
    h("div", { class: "facts" },
      h("b", {}, pct(a.observed_rate)), ` negative (${a.negative}/${a.total}) vs baseline `,
      h("b", {}, pct(a.baseline_rate)), ` · ${a.rule} · ${a.detector} · since ${when(a.started_at)}`,
      acked ? ` · acknowledged by ${a.ack.by}` : "",
      a.silenced ? " · silenced" : ""),
    a.evidence.length ? h("ol", { "aria-label": "Evidence" }, ...a.evidence.map((e) => h("li", {},
      e.url ? h("a", { href: e.url, target: "_blank", rel: "noopener noreferrer" }, e.title) : e.title,
      h("span", { class: "muted" }, ` (${pct(e.negative_prob)} negative)`)))) : null,
    h("div", { class: "actions" },
      h("button", { type: "button", onclick: () => drill(a.scope, a.key), "data-key": `${a.id}:view` }, "View chart"),
      acked ? null : h("button", { type: "button", class: "primary", onclick: () => ack(a), "data-key": `${a.id}:ack` }, "Acknowledge"),
      h("button", { type: "button", onclick: () => openSilence(a), "data-key": `${a.id}:silence` }, "Silence…")));
}

function renderFiring() {
  const n = state.firing.length;
  const count = $("#firing-count");
  count.textContent = n;
  count.classList.toggle("hot", n > 0);
  const nav = $("#nav-firing");
  nav.hidden = n === 0;
  nav.textContent = n;
  nav.className = "count hot";
  const empty = () => h("li", { class: "empty-note" }, "Nothing firing.");
  for (const list of [$("#firing"), $("#firing-full")]) {
    keepFocus(list, () => list.replaceChildren(...(n ? state.firing.map(renderAlert) : [empty()])));
  }
}

async function ack(a) {
  const r = await guarded(() => api(`/api/alerts/${encodeURIComponent(a.id)}/ack`, { method: "POST", body: { by: "analyst" } }));
  if (!r) return;
  toast(`Acknowledged: ${scopeLabel(a.scope, a.key)}`);
  state.firing = state.firing.map((x) => (x.id === r.id ? r : x));
  renderFiring();
  if (state.view === "alerts") refreshAlertsView();
}

function openSilence(a) {
  state.silenceFor = a;
  $("#silence-what").textContent = `${a.rule} for ${scopeLabel(a.scope, a.key)}`;
  $("#silence-dialog").showModal();
}

async function addSilence(body) {
  const r = await guarded(() => api("/api/silences", { method: "POST", body }));
  if (r) toast("Silence added");
  return r;
}

async function refreshAlertsView() {
  const [hist, sil] = await Promise.all([
    guarded(() => api("/api/alerts?state=all&limit=100")),
    guarded(() => api("/api/silences")),
  ]);
  if (hist) {
    $("#history tbody").replaceChildren(...hist.items.map((a) => h("tr", {},
      h("td", {}, when(a.started_at)), h("td", {}, a.rule), h("td", {}, scopeLabel(a.scope, a.key)),
      h("td", { class: `state-${a.state}` }, a.state), h("td", {}, pct(a.observed_rate)),
      h("td", {}, pct(a.baseline_rate)), h("td", {}, `${a.negative}/${a.total}`),
      h("td", {}, a.ack ? `${a.ack.by}, ${when(a.ack.at)}` : "–"))));
    if (!hist.items.length) $("#history tbody").replaceChildren(h("tr", {}, h("td", { colspan: "8", class: "empty-note" }, "No alerts yet.")));
  }
  if (sil) {
    const rows = sil.items.map((s) => h("tr", {},
      h("td", {}, s.matchers.map((m) => h("code", { class: "chip" }, m))),
      h("td", {}, when(s.starts_at)), h("td", {}, when(s.ends_at)), h("td", {}, s.comment || ""),
      h("td", {}, h("button", { type: "button", class: "danger", onclick: () => deleteSilence(s) }, "Delete"))));
    $("#silences tbody").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: "5", class: "empty-note" }, "No active silences."))]));
  }
}

async function deleteSilence(s) {
  const ok = await guarded(() => api(`/api/silences/${encodeURIComponent(s.id)}`, { method: "DELETE" }));
  if (ok !== undefined) {
    toast("Silence deleted");
    refreshAlertsView();
  }
}

// ---------- search ----------
async function runSearch(page) {
  const form = $("#search-form");
  const q = new URLSearchParams({ page: String(page), size: "20" });
  for (const [k, v] of new FormData(form)) {
    if (!v) continue;
    q.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : v);
  }
  const r = await guarded(() => api(`/api/articles?${q}`));
  if (!r) return;
  state.page = r.page;
  state.pages = Math.max(1, Math.ceil(r.total / r.size));
  renderArticles($("#results"), r.items, false);
  $("#results-summary").textContent = `${r.total.toLocaleString()} articles`;
  $("#page-info").textContent = `page ${r.page} of ${state.pages}`;
  $("#prev").disabled = r.page <= 1;
  $("#next").disabled = r.page >= state.pages;
}

// ---------- feedback ----------
function feedbackLabels() {
  const task = $("#feedback-form").task.value;
  const a = state.feedbackFor;
  const labels = task === "topic" ? state.model?.topics || state.facets.topics : ["negative", "neutral", "positive"];
  const current = task === "topic" ? a.topic : a.sentiment;
  $("#fb-label").replaceChildren(...labels.filter((l) => l !== current).map((l) => h("option", { value: l }, l)));
}

function openFeedback(a) {
  state.feedbackFor = a;
  $("#feedback-article").textContent = a.title;
  $("#fb-current-sentiment").textContent = `(now ${a.sentiment})`;
  $("#fb-current-topic").textContent = `(now ${a.topic})`;
  feedbackLabels();
  $("#feedback-dialog").showModal();
}

// ---------- live ----------
let liveTimer;
let firingSeen = "";
let facetsAt = 0;
function onEvent(event, data) {
  if (event !== "update") return;
  const firing = JSON.stringify(data.firing);
  if (firing !== firingSeen) {
    firingSeen = firing;
    state.firing = data.firing;
    renderFiring();
  }
  // New keys (topics, tickers, sources) appear as articles arrive: refresh the pickers now and then.
  if (data.new > 0 && Date.now() - facetsAt > 10000) {
    facetsAt = Date.now();
    loadFacets();
  }
  // Coalesce bursts: at most one refresh per half second.
  clearTimeout(liveTimer);
  liveTimer = setTimeout(() => {
    if (state.view === "overview") refreshOverview();
    else if (state.view === "alerts") refreshAlertsView();
  }, 500);
}

function onLive(up) {
  const live = $("#live");
  live.textContent = up ? "live" : "reconnecting…";
  live.className = `live ${up ? "on" : "off"}`;
}

// ---------- wiring ----------
function wire() {
  for (const sel of document.querySelectorAll("select[data-durations]")) {
    sel.replaceChildren(...DURATIONS.map(([v, l]) => h("option", { value: v }, l)));
    sel.value = "3600";
  }
  $("#scope").addEventListener("change", (e) => {
    const scope = e.target.value;
    const first = (state.facets[`${scope}s`] || [])[0] || "";
    drill(scope, first);
  });
  $("#key").addEventListener("change", (e) => drill(state.scope, e.target.value));
  $("#scope-form").addEventListener("submit", (e) => e.preventDefault());
  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    runSearch(1);
  });
  $("#prev").addEventListener("click", () => runSearch(state.page - 1));
  $("#next").addEventListener("click", () => runSearch(state.page + 1));

  const fbForm = $("#feedback-form");
  for (const r of fbForm.task) r.addEventListener("change", feedbackLabels);
  $("#fb-cancel").addEventListener("click", () => $("#feedback-dialog").close());
  fbForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const a = state.feedbackFor;
    const body = { article_id: a.id, task: fbForm.task.value, label: fbForm.label.value };
    const r = await guarded(() => api("/api/feedback", { method: "POST", body }));
    if (!r) return;
    $("#feedback-dialog").close();
    toast(`Thanks: ${body.task} set to “${body.label}” for the next retrain`);
  });

  const quick = $("#silence-quick");
  $("#silence-cancel").addEventListener("click", () => $("#silence-dialog").close());
  quick.addEventListener("submit", async (e) => {
    e.preventDefault();
    const a = state.silenceFor;
    const r = await addSilence({ rule: a.rule, scope: a.scope, key: a.key,
      duration_s: Number(quick.duration_s.value), comment: quick.comment.value || null });
    if (!r) return;
    $("#silence-dialog").close();
    if (state.view === "alerts") refreshAlertsView();
  });
  $("#silence-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target;
    const r = await addSilence({ scope: f.scope.value || null, key: f.key.value || null, rule: f.rule.value || null,
      duration_s: Number(f.duration_s.value), comment: f.comment.value || null });
    if (r) {
      f.reset();
      f.duration_s.value = "3600";
      refreshAlertsView();
    }
  });
  window.addEventListener("hashchange", route);
  let resizeTimer;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => state.view === "overview" && refreshChart(), 200);
  });
}

async function main() {
  wire();
  await Promise.all([loadFacets(), loadModel()]);
  const firing = await guarded(() => api("/api/alerts?state=firing"));
  if (firing) {
    state.firing = firing.items;
    renderFiring();
  }
  route();
  listen("/api/events", onEvent, onLive);
}

main();
