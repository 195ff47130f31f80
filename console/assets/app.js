"use strict";
// The console polls the overview every two seconds and redraws; actions
// (retrying a dead letter) are offered only when the server enables them.
function text(el, s) { el.textContent = s; return el; }
function cell(tr, s, cls) { const td = document.createElement("td"); text(td, s); if (cls) td.className = cls; tr.appendChild(td); return td; }
function age(sec) {
  if (sec < 1) return Math.round(sec * 1000) + "ms";
  if (sec < 120) return sec.toFixed(1) + "s";
  return Math.round(sec / 60) + "m";
}
async function getJSON(url) {
  const r = await fetch(url, {cache: "no-store"});
  if (!r.ok) throw new Error(url + ": " + r.status + " " + (await r.text()));
  return r.json();
}
async function act(action, projection, eventID, button) {
  if (action === "discard" && !window.confirm("Discard the dead letter " + eventID + " of " + projection + " without applying it?")) return;
  button.disabled = true;
  const r = await fetch("api/deadletters/" + action, {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({projection: projection, event_id: eventID})});
  const msg = await r.text();
  document.getElementById("error").textContent = r.ok ? "" : msg;
  refresh();
}
async function rebuild(projection, button) {
  if (!window.confirm("Rebuild the projection " + projection + " from the start of the log, beside its current build?")) return;
  button.disabled = true;
  const r = await fetch("api/projections/rebuild", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({projection: projection})});
  const msg = await r.text();
  document.getElementById("error").textContent = r.ok ? "" : msg;
  refresh();
}
async function dropBuild(b, button) {
  if (!window.confirm("Drop the build " + b.build + " of " + b.projection + ": its tables and checkpoint? This cannot be undone.")) return;
  button.disabled = true;
  const r = await fetch("api/projections/drop", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({projection: b.projection, version: b.version, generation: b.generation})});
  const msg = await r.text();
  document.getElementById("error").textContent = r.ok ? "" : msg;
  refresh();
}
function drawBuilds(builds, actions) {
  const tbody = document.querySelector("#builds tbody");
  tbody.replaceChildren();
  for (const b of builds) {
    const tr = document.createElement("tr");
    tr.dataset.build = b.build;
    cell(tr, b.projection); cell(tr, b.build, "build"); cell(tr, b.status, "status status-" + b.status);
    cell(tr, b.checkpoint); cell(tr, String(b.applied), "applied"); cell(tr, new Date(b.updated_at).toLocaleTimeString());
    const td = cell(tr, "");
    if (actions && b.status === "old") {
      const btn = document.createElement("button");
      btn.className = "drop";
      text(btn, "Drop");
      btn.onclick = () => dropBuild(b, btn);
      td.appendChild(btn);
    }
    tbody.appendChild(tr);
  }
}
// The relay: its leader (none leading is a warning: readiness fails, and
// nothing publishes the log) and its lag behind the log.
function drawRelay(r) {
  const lead = document.getElementById("relay"), lag = document.getElementById("relaylag");
  lead.className = ""; lag.className = ""; lead.title = "";
  if (r === null) { text(lead, "not watched"); text(lag, "-"); return; }
  if (r.leader) {
    text(lead, "pid " + r.pid + (r.application ? " (" + r.application + (r.client ? ", " + r.client : "") + ")" : ""));
  } else {
    lead.className = "warning";
    text(lead, "no relay is leading");
    lead.title = "Nothing publishes the log to NATS, and readiness fails until a relay takes the leadership.";
  }
  if (r.lag_error) { lag.className = "error"; text(lag, r.lag_error); return; }
  if (!r.lag) { text(lag, "-"); return; }
  const l = r.lag;
  text(lag, (l.capped ? ">" : "") + l.events + " events" + (l.events > 0 ? ", oldest " + age(l.seconds) : "") +
    (l.checkpoint ? " (checkpoint " + l.checkpoint + ")" : " (nothing published yet)"));
  if (!r.leader && l.events > 0) lag.className = "warning";
}
async function refresh() {
  try {
    const o = await getJSON("api/overview");
    text(document.getElementById("updated"), "updated " + new Date(o.generated_at).toLocaleTimeString());
    text(document.getElementById("mode"), o.actions ? "actions enabled" : "read-only");
    text(document.getElementById("head"), o.log.head);
    text(document.getElementById("held"), o.log.held_back > 0 ? o.log.held_back + " events, by pid " + o.log.oldest_pid + " open " + age(o.log.oldest_open_seconds) : "0");
    drawRelay(o.relay);
    const tbody = document.querySelector("#projections tbody");
    tbody.replaceChildren();
    for (const p of o.projections) {
      const tr = document.createElement("tr");
      tr.dataset.name = p.name;
      cell(tr, p.name, "name");
      cell(tr, p.state, "state state-" + p.state);
      cell(tr, p.current === p.target ? p.current : p.current + " → " + p.target, "build");
      cell(tr, p.checkpoint, "checkpoint");
      cell(tr, (p.lag_capped ? ">" : "") + p.lag_events, "lag");
      cell(tr, age(p.lag_seconds), "lagtime");
      cell(tr, p.rate === null || p.rate === undefined ? "-" : p.rate.toFixed(1), "rate");
      cell(tr, String(p.dead_letters), "deadletters");
      cell(tr, p.owner || "-", "owner");
      const rb = p.rebuild;
      const td = cell(tr, "", "rebuild"), span = document.createElement("span");
      span.className = "rebuildstate";
      text(span, rb ? rb.state + (rb.error ? ": " + rb.error : "") + " " : "");
      td.appendChild(span);
      if (o.actions && !(rb && rb.state === "running")) {
        const b = document.createElement("button");
        b.className = "rebuild";
        text(b, "Rebuild");
        b.onclick = () => rebuild(p.name, b);
        td.appendChild(b);
      }
      tbody.appendChild(tr);
    }
    drawBuilds(o.builds, o.actions);
    const dl = document.querySelector("#deadletters tbody");
    dl.replaceChildren();
    for (const d of o.dead_letters) {
      const tr = document.createElement("tr");
      tr.dataset.event = d.event_id;
      cell(tr, d.projection); cell(tr, d.event_id);
      const st = cell(tr, "", "stream");
      if (o.streams) {
        // Inspect: open the stream in the browser, at the event.
        const a = document.createElement("a");
        a.href = "#"; a.className = "inspect"; a.title = "Show the event in its stream";
        text(a, d.stream + " v" + d.version);
        a.onclick = (ev) => { ev.preventDefault(); showStream(d.stream, d.event_id, Math.max(1, d.version - 20)); };
        st.appendChild(a);
      } else {
        text(st, d.stream + " v" + d.version);
      }
      cell(tr, d.type); cell(tr, String(d.attempts)); cell(tr, new Date(d.failed_at).toLocaleString(), "failedat"); cell(tr, d.error);
      const td = cell(tr, "");
      if (o.actions) {
        for (const [action, label] of [["retry", "Retry"], ["discard", "Discard"]]) {
          const b = document.createElement("button");
          b.className = action;
          text(b, label);
          b.onclick = () => act(action, d.projection, d.event_id, b);
          td.appendChild(b);
        }
      }
      dl.appendChild(tr);
    }
    drawProcessTypes(o.processes);
    if (shownProcess) showProcess(shownProcess.type, shownProcess.id);
    text(document.getElementById("processerror"), o.processes_error || "");
    const browser = document.getElementById("browser");
    if (o.streams && browser.hidden) { browser.hidden = false; listStreams(); }
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (e) {
    document.getElementById("error").textContent = String(e);
  }
}
// Processes: counts by state per type; a click on a count lists those
// processes, a click on one shows its history.
const processStates = ["running", "completed", "failed", "compensating", "compensated", "compensation_failed"];
function drawProcessTypes(types) {
  const sec = document.getElementById("processes");
  sec.hidden = types === null;
  if (types === null) return;
  const tbody = document.querySelector("#processtypes tbody");
  tbody.replaceChildren();
  for (const pt of types) {
    const tr = document.createElement("tr");
    tr.dataset.type = pt.type;
    cell(tr, pt.type, "name");
    for (const st of processStates) {
      const td = cell(tr, "", "count-" + st), a = document.createElement("a");
      a.href = "#"; text(a, String(pt.counts[st] || 0));
      a.onclick = (ev) => { ev.preventDefault(); listProcesses(pt.type, st); };
      td.appendChild(a);
    }
    cell(tr, String(pt.pending_timers), "timers");
    cell(tr, String(pt.stuck_timers), "stuck");
    cell(tr, String(pt.pending_commands), "pending");
    cell(tr, String(pt.failed_commands), "failedcmds");
    tbody.appendChild(tr);
  }
}
async function listProcesses(type, status) {
  try {
    const ps = await getJSON("api/processes?" + new URLSearchParams({type: type, status: status}));
    text(document.getElementById("processlisttitle"), type + ": " + status);
    const tbody = document.querySelector("#processlist tbody");
    tbody.replaceChildren();
    for (const p of ps) {
      const tr = document.createElement("tr");
      tr.dataset.id = p.id;
      const td = cell(tr, ""), a = document.createElement("a");
      a.href = "#"; a.className = "process"; text(a, p.id);
      a.onclick = (ev) => { ev.preventDefault(); showProcess(p.type, p.id); };
      td.appendChild(a);
      cell(tr, p.status, "status"); cell(tr, p.reason || "", "reason");
      cell(tr, new Date(p.started_at).toLocaleString()); cell(tr, new Date(p.updated_at).toLocaleString());
      tbody.appendChild(tr);
    }
    document.body.dataset.processlist = type + "/" + status;
  } catch (e) { document.getElementById("error").textContent = String(e); }
}
// The process shown is redrawn with each refresh: its timers go overdue
// or fire, its history grows.
let shownProcess = null;
async function showProcess(type, id) {
  shownProcess = {type: type, id: id};
  try {
    const p = await getJSON("api/process?" + new URLSearchParams({type: type, id: id}));
    text(document.getElementById("processtitle"), p.type + " " + p.id + " — " + p.status + (p.reason ? " (" + p.reason + ")" : ""));
    drawTimers(p.timers || []);
    const tbody = document.querySelector("#processhistory tbody");
    tbody.replaceChildren();
    for (const e of p.history) {
      const tr = document.createElement("tr");
      cell(tr, String(e.version)); cell(tr, e.type, "type"); cell(tr, new Date(e.recorded_at).toLocaleString());
      cell(tr, eventData(e), "data");
      tbody.appendChild(tr);
    }
    document.body.dataset.process = type + "/" + id;
  } catch (e) { document.getElementById("error").textContent = String(e); }
}
// A process's timers: pending (overdue in the warning style once due and
// not fired), fired, cancelled or replaced.
function drawTimers(timers) {
  const table = document.getElementById("processtimers"), tbody = table.querySelector("tbody");
  table.hidden = timers.length === 0;
  tbody.replaceChildren();
  for (const tm of timers) {
    const tr = document.createElement("tr");
    tr.dataset.timer = tm.name;
    tr.className = "timer-" + tm.state + (tm.overdue ? " overdue" : "");
    cell(tr, tm.name, "name");
    const due = cell(tr, new Date(tm.due).toLocaleString(), "due");
    if (tm.overdue) {
      const warn = document.createElement("span");
      warn.className = "warning overdue"; text(warn, " overdue by " + age(Math.max(Date.now() - Date.parse(tm.due), 0) / 1000));
      due.appendChild(warn);
    }
    cell(tr, tm.state, "state");
    cell(tr, new Date(tm.scheduled_at).toLocaleString());
    cell(tr, tm.ended_at ? new Date(tm.ended_at).toLocaleString() : "-", "ended");
    tbody.appendChild(tr);
  }
}
// The stream browser: every value from the server is set with textContent.
function eventData(e) {
  const raw = JSON.stringify(e.data);
  if (document.getElementById("raw").checked) return raw;
  if (e.decode_error) return raw + "  (decode: " + e.decode_error + ")";
  if (e.decoded) return JSON.stringify(e.decoded.length === 1 ? e.decoded[0] : e.decoded);
  return raw;
}
async function listStreams() {
  const q = new URLSearchParams({search: document.getElementById("search").value, category: document.getElementById("category").value});
  try {
    const p = await getJSON("api/streams?" + q);
    const ul = document.getElementById("streams");
    ul.replaceChildren();
    for (const s of p.streams) {
      const li = document.createElement("li"), a = document.createElement("a");
      a.href = "#"; a.className = "stream"; a.dataset.stream = s.stream_id;
      text(a, s.stream_id + " (v" + s.version + ")");
      a.onclick = (ev) => { ev.preventDefault(); showStream(s.stream_id); };
      li.appendChild(a); ul.appendChild(li);
    }
    document.body.dataset.streams = String(Number(document.body.dataset.streams || 0) + 1);
  } catch (e) { document.getElementById("error").textContent = String(e); }
}
// showStream shows a stream's events (from version from, when given);
// inspected, when given, is the ID of the event to mark and scroll to (a
// dead letter's).
async function showStream(id, inspected, from) {
  try {
    const q = {id: id};
    if (from) q.from = String(from);
    const evs = await getJSON("api/stream?" + new URLSearchParams(q));
    text(document.getElementById("streamtitle"), id);
    const tbody = document.querySelector("#events tbody");
    tbody.replaceChildren();
    for (const e of evs) {
      const tr = document.createElement("tr");
      tr.dataset.event = e.event_id;
      cell(tr, String(e.version), "version"); cell(tr, e.position); cell(tr, e.type, "type");
      cell(tr, new Date(e.recorded_at).toLocaleString());
      const corr = e.metadata.correlation_id || "";
      const td = cell(tr, "");
      if (corr) {
        const a = document.createElement("a");
        a.href = "#"; a.className = "corr"; text(a, corr);
        a.onclick = (ev) => { ev.preventDefault(); document.getElementById("corrid").value = corr; follow(corr); };
        td.appendChild(a);
      }
      cell(tr, eventData(e), "data");
      if (e.event_id === inspected) tr.className = "inspected";
      tbody.appendChild(tr);
    }
    document.body.dataset.stream = id;
    document.body.dataset.inspected = inspected || "";
    document.body.dataset.from = from ? String(from) : "";
    const marked = tbody.querySelector("tr.inspected");
    if (marked) marked.scrollIntoView({block: "center"});
  } catch (e) { document.getElementById("error").textContent = String(e); }
}
function treeNode(e) {
  const li = document.createElement("li");
  li.dataset.event = e.event_id;
  const span = document.createElement("span");
  span.className = "node";
  text(span, e.type + " — " + e.stream_id + " v" + e.version + " — " + eventData(e));
  li.appendChild(span);
  if (e.children) {
    const ul = document.createElement("ul");
    for (const c of e.children) ul.appendChild(treeNode(c));
    li.appendChild(ul);
  }
  return li;
}
async function follow(id) {
  try {
    const roots = await getJSON("api/correlation?" + new URLSearchParams({id: id}));
    const ul = document.getElementById("tree");
    ul.replaceChildren();
    for (const r of roots) ul.appendChild(treeNode(r));
    document.body.dataset.followed = id;
  } catch (e) { document.getElementById("error").textContent = String(e); }
}
// Raw or upcast: redraw what is shown.
document.getElementById("raw").onchange = () => {
  const b = document.body.dataset;
  if (b.stream) showStream(b.stream, b.inspected, Number(b.from) || 0);
  if (b.followed) follow(b.followed);
  if (shownProcess) showProcess(shownProcess.type, shownProcess.id);
};
document.getElementById("streamsearch").onsubmit = (ev) => { ev.preventDefault(); listStreams(); };
document.getElementById("corrform").onsubmit = (ev) => { ev.preventDefault(); follow(document.getElementById("corrid").value); };
refresh();
setInterval(refresh, 2000);
