// Spool's dashboard: one page, hash routes, no dependencies. Every figure comes from the JSON
// API under api/ (docs/dashboard.md); the overview is pushed by server-sent events every 2 s,
// with polling as a fallback.
"use strict";

const main = document.getElementById("main");
const state = { span: "hour", overview: null, readOnly: true, source: null, poll: null };

// --- small helpers -------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function ms(v) {
  if (v === null || v === undefined) return "–";
  if (v < 10) return `${Math.round(v * 10) / 10} ms`;
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60000) return `${(v / 1000).toFixed(1)} s`;
  if (v < 3600000) return `${Math.round(v / 60000)} min`;
  return `${(v / 3600000).toFixed(1)} h`;
}

const time = (t) => (t ? new Date(t).toISOString().replace("T", " ").slice(0, 19) : "–");

async function api(path) {
  const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 401) { location.href = "login"; throw new Error("sign in"); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function toast(text) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.classList.add("show");
  setTimeout(() => t.classList.remove("show"), 2500);
}

// Every action asks first, then POSTs with the action header (see docs/dashboard.md).
async function act(label, path) {
  if (!confirm(`${label}?`)) return;
  const r = await fetch(path, { method: "POST", credentials: "same-origin", headers: { "X-Spool-Action": "1" } });
  const body = await r.json().catch(() => ({}));
  toast(r.ok ? `${label}: done` : `${label}: ${body.error || r.statusText}`);
  route();
}

function actionButton(label, path, danger) {
  if (state.readOnly) return null;
  return h("button", { class: danger ? "danger" : null, "data-action": label.split(" ")[0].toLowerCase(), onclick: () => act(label, path) }, label);
}

function table(headers, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty || "Nothing here.");
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { class: x.num ? "num" : null }, x.label || x)))), h("tbody", {}, rows));
}

// --- charts ---------------------------------------------------------------------------------

function chart(title, points, pick, color) {
  const w = 400, hgt = 120, pad = 4;
  const values = points.map(pick).map((v) => v || 0);
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? (w - 2 * pad) / (values.length - 1) : 0;
  const path = values.map((v, i) => `${i ? "L" : "M"}${(pad + i * step).toFixed(1)},${(hgt - pad - (v / max) * (hgt - 2 * pad)).toFixed(1)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "path");
  line.setAttribute("d", path || "M0,0");
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", color);
  line.setAttribute("stroke-width", "2");
  svg.append(line);
  const last = values.length ? values[values.length - 1] : 0;
  return h("div", { class: "card chart" }, h("div", { class: "title" }, `${title} — max ${title.includes("p95") ? ms(max) : max}, now ${title.includes("p95") ? ms(last) : last}`), svg);
}

// --- pages ----------------------------------------------------------------------------------

function sumRows(rows, key) { return rows.reduce((n, r) => n + (r[key] || 0), 0); }

function renderOverview(o) {
  const q = o.summary.queues;
  const completed = sumRows(q, "completed"), failed = sumRows(q, "failed");
  const worst = (key) => Math.max(0, ...q.map((r) => (r[key] && r[key].p95) || 0));
  const card = (label, value, stat) => h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value", "data-stat": stat }, value));
  const spans = ["hour", "day", "week"].map((s) => h("a", { href: "#/", class: s === state.span ? "active" : null, onclick: (e) => { e.preventDefault(); state.span = s; connect(); } }, `Last ${s}`));
  const rows = q.map((r) => h("tr", { "data-queue": r.name },
    h("td", {}, h("a", { href: `#/jobs?queue=${encodeURIComponent(r.name)}` }, r.name)),
    h("td", { class: "num" }, r.completed), h("td", { class: "num" }, r.failed),
    h("td", { class: "num" }, `${(r.failure_rate * 100).toFixed(1)} %`), h("td", { class: "num" }, r.throughput_per_min.toFixed(1)),
    h("td", { class: "num" }, ms(r.wait_ms.p95)), h("td", { class: "num" }, ms(r.run_ms.p95)), h("td", { class: "num" }, ms(r.oldest_ready_age_ms))));
  main.replaceChildren(
    h("h1", {}, "Overview"),
    h("div", { class: "tabs" }, spans),
    h("div", { class: "cards" },
      card("Completed", completed, "completed"), card("Failed", failed, "failed"),
      card("Per minute", (completed / (o.summary.window_ms / 60000)).toFixed(1), "throughput"),
      card("Wait p95", ms(worst("wait_ms")), "wait_p95"), card("Run p95", ms(worst("run_ms")), "run_p95"),
      card("Pending", o.totals.pending, "pending"), card("Delayed", o.totals.delayed, "delayed"),
      card("Running", o.totals.reserved, "reserved"), card("Failed records", o.totals.failed, "failed_records"),
      card("Workers", `${o.totals.busy} / ${o.totals.workers}`, "workers")),
    h("div", { class: "charts" },
      chart("Completed per step", o.series, (p) => p.completed, "#2563eb"),
      chart("Failed per step", o.series, (p) => p.failed, "#dc2626"),
      chart("Wait p95", o.series, (p) => p.wait_p95_ms, "#d97706"),
      chart("Run p95", o.series, (p) => p.run_p95_ms, "#16a34a")),
    h("h2", {}, "Queues"),
    table(["Queue", { label: "Completed", num: 1 }, { label: "Failed", num: 1 }, { label: "Failure rate", num: 1 }, { label: "Per min", num: 1 }, { label: "Wait p95", num: 1 }, { label: "Run p95", num: 1 }, { label: "Oldest ready", num: 1 }], rows, "No activity in this window."));
}

async function pageQueues() {
  const { queues } = await api("api/queues");
  const rows = queues.map((q) => h("tr", { "data-queue": q.name },
    h("td", {}, h("a", { href: `#/jobs?queue=${encodeURIComponent(q.name)}` }, q.name), " ", q.paused ? h("span", { class: "pill paused" }, "paused") : null),
    h("td", { class: "num" }, q.pending), h("td", { class: "num" }, q.delayed), h("td", { class: "num" }, q.reserved),
    h("td", { class: "num" }, h("a", { href: `#/jobs?state=failed&queue=${encodeURIComponent(q.name)}` }, q.failed)),
    h("td", { class: "num" }, ms(q.oldest_ready_age_ms)), h("td", { class: "num" }, q.workers),
    h("td", {}, q.paused ? actionButton("Continue queue", `api/queues/${encodeURIComponent(q.name)}/continue`) : actionButton("Pause queue", `api/queues/${encodeURIComponent(q.name)}/pause`),
      " ", q.failed ? actionButton("Retry failed", `api/queues/${encodeURIComponent(q.name)}/retry-failed`) : null)));
  main.replaceChildren(h("h1", {}, "Queues"),
    table(["Queue", { label: "Pending", num: 1 }, { label: "Delayed", num: 1 }, { label: "Running", num: 1 }, { label: "Failed", num: 1 }, { label: "Oldest ready", num: 1 }, { label: "Workers", num: 1 }, ""], rows, "No queues yet."));
}

// The search a jobs page shows: its state tab, queue, one search field and the cursor.
function jobsHash(st, queue, by, term, after) {
  const p = new URLSearchParams({ state: st });
  if (queue) p.set("queue", queue);
  if (by && term) { p.set("by", by); p.set("q", term); }
  if (after) p.set("after", after);
  return `#/jobs?${p}`;
}

async function pageJobs(params) {
  const st = params.get("state") || "pending";
  const queue = params.get("queue") || "";
  const by = params.get("by") || "tag";
  const term = params.get("q") || "";
  const after = params.get("after") || "";
  const qs = new URLSearchParams({ state: st, limit: "100" });
  if (queue) qs.set("queue", queue);
  if (term && by !== "id") qs.set(by, term);
  if (after) qs.set("after", after);
  const { jobs, next } = await api(`api/jobs?${qs}`);
  const tabs = ["pending", "delayed", "reserved", "failed", "completed"].map((s) =>
    h("a", { href: jobsHash(s, queue, by, term), class: s === st ? "active" : null, "data-state": s }, s === "reserved" ? "running" : s));
  const choices = [["tag", "Tag"], ["job", "Job name"], ["batch", "Batch"], ["id", "Id"]];
  const select = h("select", { id: "job-search-by", "aria-label": "Search by" },
    choices.map(([v, label]) => h("option", { value: v, selected: v === by }, label)));
  const input = h("input", { id: "job-search", value: term, placeholder: "Search…", "aria-label": "Search" });
  const search = h("form", { class: "toolbar", onsubmit: (e) => {
    e.preventDefault();
    const value = input.value.trim();
    if (select.value === "id" && value) location.hash = `#/job/${encodeURIComponent(value)}`;
    else location.hash = jobsHash(st, queue, select.value, value);
  } }, select, " ", input, " ", h("button", { type: "submit" }, "Search"),
    term || after ? [" ", h("a", { href: jobsHash(st, queue) }, "clear")] : null);
  const link = (j) => h("a", { href: `#/job/${encodeURIComponent(j.id)}` }, h("code", {}, j.id));
  const tags = (j) => h("td", { "data-tags": (j.tags || []).join(",") }, (j.tags || []).map((t) => h("span", { class: "pill" }, t)));
  let heads, rows;
  if (st === "failed") {
    heads = ["Id", "Queue", "Job", "Tags", { label: "Attempts", num: 1 }, "Failed at", "Error", ""];
    rows = jobs.map((j) => h("tr", { "data-id": j.id }, h("td", {}, link(j)), h("td", {}, j.queue), h("td", {}, j.job), tags(j), h("td", { class: "num" }, j.attempts), h("td", {}, time(j.failed_at)), h("td", { class: "bad" }, j.error),
      h("td", {}, actionButton("Retry job", `api/failed/${encodeURIComponent(j.id)}/retry`), " ", actionButton("Forget job", `api/failed/${encodeURIComponent(j.id)}/forget`, true))));
  } else if (st === "completed") {
    heads = ["Id", "Queue", "Job", "Tags", { label: "Attempts", num: 1 }, "Completed at", "Result"];
    rows = jobs.map((j) => h("tr", { "data-id": j.id }, h("td", {}, link(j)), h("td", {}, j.queue), h("td", {}, j.job), tags(j), h("td", { class: "num" }, j.attempts), h("td", {}, time(j.completed_at)),
      h("td", {}, j.has_result ? h("a", { href: `#/job/${encodeURIComponent(j.id)}`, "data-result": "kept" }, "kept") : "–")));
  } else {
    heads = ["Id", "Queue", "Job", "Tags", { label: "Attempts", num: 1 }, st === "reserved" ? "Running" : "Available at", "Last error", ""];
    rows = jobs.map((j) => h("tr", { "data-id": j.id }, h("td", {}, link(j)), h("td", {}, j.queue), h("td", {}, j.job), tags(j), h("td", { class: "num" }, j.attempts),
      h("td", {}, st === "reserved" ? `running for ${ms(j.running_for_ms)}` : time(j.available_at)), h("td", { class: "bad" }, j.last_error || ""),
      h("td", {}, st === "reserved" ? null : [actionButton("Run now", `api/jobs/${encodeURIComponent(j.id)}/run-now`), " ", actionButton("Delete job", `api/jobs/${encodeURIComponent(j.id)}/delete`, true)])));
  }
  // Keyset paging: the store says where the next page starts. A short page with more to see
  // means the search looked at as much as one request may and stopped there.
  const older = st === "completed" ? "Older" : "More";
  const pager = next
    ? h("p", {}, jobs.length ? null : h("span", { class: "muted" }, "Nothing found in the part searched. "),
      h("a", { href: jobsHash(st, queue, by, term, next), "data-more": true, class: "button" }, jobs.length ? `${older} →` : `Search ${older.toLowerCase()} →`))
    : null;
  const empty = term ? `No ${st} jobs with ${by} “${term}”.` : `No ${st} jobs.`;
  main.replaceChildren(...[h("h1", {}, queue ? `Jobs on ${queue}` : "Jobs"), h("div", { class: "tabs" }, tabs), search,
    jobs.length || !next ? table(heads, rows, empty) : null, pager].filter(Boolean));
}

async function pageJob(id) {
  const j = await api(`api/jobs/${encodeURIComponent(id)}`);
  const rows = [];
  const add = (k, v) => { if (v !== undefined && v !== null && v !== "") rows.push(h("dt", {}, k), h("dd", {}, v)); };
  add("Id", h("code", {}, j.id)); add("State", j.state); add("Queue", j.queue); add("Job", j.job);
  add("Attempts", j.attempts); add("Recoveries", j.recoveries); add("Deferrals", j.deferrals);
  add("Available at", j.available_at && time(j.available_at)); add("Worker", j.worker);
  add("Tags", j.tags && j.tags.length ? j.tags.join(", ") : null);
  add("Enqueued at", j.enqueued_at && time(j.enqueued_at)); add("Started at", j.started_at && time(j.started_at));
  add("Failed at", j.failed_at && time(j.failed_at)); add("Completed at", j.completed_at && time(j.completed_at));
  add("Error", j.error || j.last_error);
  if (j.causes && j.causes.length) add("Caused by", h("ol", {}, j.causes.map((c) => h("li", {}, c))));
  if (j.progress) add("Progress", `${j.progress.percent} %${j.progress.message ? " — " + j.progress.message : ""}`);
  const actions = j.kind === "failed"
    ? [actionButton("Retry job", `api/failed/${encodeURIComponent(j.id)}/retry`), actionButton("Forget job", `api/failed/${encodeURIComponent(j.id)}/forget`, true)]
    : j.kind === "queued" && j.state !== "reserved" ? [actionButton("Run now", `api/jobs/${encodeURIComponent(j.id)}/run-now`), actionButton("Delete job", `api/jobs/${encodeURIComponent(j.id)}/delete`, true)] : [];
  main.replaceChildren(h("h1", {}, `Job ${j.job || ""}`), h("div", { class: "toolbar" }, actions), h("dl", {}, rows),
    j.payload !== undefined ? [h("h2", {}, "Payload"), h("pre", {}, JSON.stringify(j.payload, null, 2))] : null,
    j.options ? [h("h2", {}, "Options"), h("pre", {}, JSON.stringify(j.options, null, 2))] : null,
    j.result !== undefined && j.result !== null ? [h("h2", {}, "Result"), h("pre", {}, JSON.stringify(j.result, null, 2))] : null);
}

async function pageBatches() {
  const { batches } = await api("api/batches");
  const rows = batches.map((b) => h("tr", { "data-batch": b.id },
    h("td", {}, b.name || h("code", {}, b.id)), h("td", { class: "num" }, b.total), h("td", { class: "num" }, b.pending), h("td", { class: "num" }, b.failed),
    h("td", {}, h("div", { class: b.failed ? "bar failed" : "bar", title: `${b.progress} %` }, h("div", { style: `width:${b.progress}%` })), `${b.progress} %`),
    h("td", {}, b.cancelled_at ? "cancelled" : b.finished_at ? "finished" : "running"),
    h("td", {}, !b.finished_at && !b.cancelled_at ? actionButton("Cancel batch", `api/batches/${encodeURIComponent(b.id)}/cancel`, true) : null, " ",
      b.failed ? actionButton("Retry batch", `api/batches/${encodeURIComponent(b.id)}/retry`) : null)));
  main.replaceChildren(h("h1", {}, "Batches"), table(["Batch", { label: "Total", num: 1 }, { label: "Pending", num: 1 }, { label: "Failed", num: 1 }, "Progress", "State", ""], rows, "No batches."));
}

async function pageWorkers() {
  const w = await api("api/workers");
  const rows = w.workers.map((x) => h("tr", {}, h("td", {}, h("code", {}, x.id)), h("td", {}, x.host), h("td", { class: "num" }, x.pid), h("td", {}, x.queues.join(", ")), h("td", { class: "num" }, x.busy.length), h("td", { class: "num" }, ms(x.last_seen_ms))));
  const sup = w.supervisors.map((s) => h("tr", {}, h("td", {}, h("code", {}, s.id)), h("td", {}, s.info && s.info.host), h("td", {}, h("pre", {}, JSON.stringify(s.info && s.info.pools, null, 1)))));
  main.replaceChildren(h("h1", {}, "Workers"), table(["Id", "Host", { label: "Pid", num: 1 }, "Queues", { label: "Running", num: 1 }, { label: "Last seen", num: 1 }], rows, "No live workers."),
    h("h2", {}, "Supervisors"), table(["Id", "Host", "Pools"], sup, "No supervisors."));
}

async function pageSchedules() {
  const { schedules } = await api("api/schedules");
  const now = Date.now();
  const when = (t) => (t == null ? "–" : `${time(t)} (${t >= now ? "in " + ms(t - now) : ms(now - t) + " ago"})`);
  const rows = schedules.map((s) => h("tr", { "data-schedule": s.name },
    h("td", {}, s.name), h("td", {}, h("code", {}, s.cron)), h("td", {}, s.timezone || "UTC"), h("td", {}, s.job), h("td", {}, s.queue),
    h("td", { class: "next-run" }, when(s.next_run_ms)),
    h("td", {}, s.last_run_ms == null ? "–" : h("a", { href: `#/job/${encodeURIComponent(`cron:${s.name}:${s.last_run_ms}`)}` }, when(s.last_run_ms))),
    h("td", {}, h("code", {}, s.worker))));
  main.replaceChildren(h("h1", {}, "Schedules"),
    table(["Name", "Cron", "Zone", "Job", "Queue", "Next run", "Last run", "Published by"], rows, "No live worker runs a schedule."));
}

// --- live overview ------------------------------------------------------------------------

function setLive(on) { document.getElementById("live").className = on ? "on" : "off"; }

function onOverview(o) {
  state.overview = o;
  state.readOnly = o.read_only;
  if (currentPage() === "overview") renderOverview(o);
}

function connect() {
  if (state.source) state.source.close();
  clearInterval(state.poll);
  if (!window.EventSource) return startPolling();
  const source = new EventSource(`api/live?span=${state.span}`);
  state.source = source;
  source.addEventListener("overview", (e) => { setLive(true); onOverview(JSON.parse(e.data)); });
  source.addEventListener("error", () => {
    setLive(false);
    // The browser retries by itself; poll meanwhile so the page stays current.
    if (source.readyState === EventSource.CLOSED) startPolling();
  });
}

function startPolling() {
  clearInterval(state.poll);
  const tick = () => api(`api/overview?span=${state.span}`).then((o) => { setLive(true); onOverview(o); }, () => setLive(false));
  tick();
  state.poll = setInterval(tick, 2000);
}

// --- routing ------------------------------------------------------------------------------

function currentPage() {
  const path = location.hash.replace(/^#\/?/, "").split("?")[0];
  return path.split("/")[0] || "overview";
}

async function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const page = currentPage();
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  try {
    if (page === "overview") {
      if (state.overview) renderOverview(state.overview);
      else onOverview(await api(`api/overview?span=${state.span}`));
    } else if (page === "queues") await pageQueues();
    else if (page === "jobs") await pageJobs(params);
    else if (page === "job") await pageJob(decodeURIComponent(path.slice(4)));
    else if (page === "batches") await pageBatches();
    else if (page === "workers") await pageWorkers();
    else if (page === "schedules") await pageSchedules();
    else main.replaceChildren(h("p", {}, "No such page."));
  } catch (e) {
    main.replaceChildren(h("p", { class: "bad" }, `Cannot load this page: ${e.message}`));
  }
}

document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = document.getElementById("search-id").value.trim();
  if (id) location.hash = `#/job/${encodeURIComponent(id)}`;
});
window.addEventListener("hashchange", route);
api(`api/overview?span=${state.span}`).then((o) => { state.readOnly = o.read_only; onOverview(o); route(); connect(); }, (e) => main.replaceChildren(h("p", { class: "bad" }, `Cannot reach the dashboard's API: ${e.message}`)));
