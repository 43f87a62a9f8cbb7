// NoETL console: live updates (EventSource) and actions. Everything shown is rendered and
// escaped by the server; this script only swaps in those fragments and sets text.
"use strict";

const TOKEN_KEY = "noetl_token";

function token() {
  const kept = sessionStorage.getItem(TOKEN_KEY);
  if (kept) return kept;
  const cookie = document.cookie.split("; ").find((c) => c.startsWith(TOKEN_KEY + "="));
  return cookie ? decodeURIComponent(cookie.slice(TOKEN_KEY.length + 1)) : "";
}

function flash(message, isError) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = message;
  box.className = isError ? "flash error" : "flash";
  box.hidden = false;
}

// Actions carry the token in the Authorization header and a marker header: a cross-site form
// can send neither, which (with SameSite=Strict cookies and the server's Origin check) is the
// console's CSRF protection.
async function post(url, body) {
  const headers = { "Content-Type": "application/json", "X-NoETL-Console": "1" };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const answer = await fetch(url, { method: "POST", headers, body: JSON.stringify(body || {}), credentials: "same-origin" });
  let data = {};
  try { data = await answer.json(); } catch (e) { data = {}; }
  return { status: answer.status, data };
}

function errorText(data, status) {
  return (data && (data.error || data.detail)) || ("request failed (HTTP " + status + ")");
}

function setupLogin() {
  // The *log out* link is on every page, not only on the login page: it forgets the token here.
  document.querySelectorAll("[data-action=logout]").forEach((link) => link.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    document.cookie = TOKEN_KEY + "=; path=/; max-age=0; SameSite=Strict";
  }));
  const form = document.getElementById("login");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = form.elements.token.value.trim();
    sessionStorage.setItem(TOKEN_KEY, value);
    document.cookie = TOKEN_KEY + "=" + encodeURIComponent(value) + "; path=/; SameSite=Strict";
    window.location.assign(form.dataset.next || "/");
  });
}

function setupList() {
  const table = document.getElementById("executions");
  const live = document.getElementById("live");
  if (!table || !live || !window.EventSource) return;
  let source = null;
  const connect = () => {
    if (source) source.close();
    source = null;
    if (!live.checked) return;
    source = new EventSource(table.dataset.live);
    source.addEventListener("rows", (event) => {
      table.tBodies[0].innerHTML = JSON.parse(event.data).html;
    });
  };
  live.addEventListener("change", connect);
  connect();
}

function paintSteps(steps) {
  for (const [name, view] of Object.entries(steps)) {
    document.querySelectorAll(".node").forEach((node) => {
      if (node.dataset.step !== name) return;
      node.setAttribute("class", "node " + view.status);
      const text = node.querySelector(".progress");
      if (text && view.progress) {
        const p = view.progress;
        text.textContent = (p.done + p.failed) + "/" + p.total + (p.failed ? " (" + p.failed + " failed)" : "");
      }
    });
    document.querySelectorAll("[data-step-status]").forEach((badge) => {
      if (badge.dataset.stepStatus !== name) return;
      badge.textContent = view.status;
      badge.className = "badge " + view.status;
    });
    document.querySelectorAll("[data-step-progress]").forEach((line) => {
      if (line.dataset.stepProgress !== name || !view.progress) return;
      const p = view.progress;
      line.textContent = p.done + " done, " + p.failed + " failed of " + p.total;
    });
  }
}

// Rows of the event table, each once: a live update and a "Show the next" page may both carry one.
function appendRows(body, html) {
  const shown = Number(body.lastElementChild?.dataset.id || "0");
  const incoming = document.createElement("tbody");
  incoming.innerHTML = html;
  for (const row of Array.from(incoming.children)) {
    if (Number(row.dataset.id) > shown) body.appendChild(row);
  }
}

// The event table pages: the first rows come with the page, each click on "Show the next" brings
// as many more (a 10,000-item loop's page stays small), and a live page stops adding rows at that
// size and offers the button instead.
function setupMoreEvents() {
  const more = document.getElementById("events-more");
  if (more) more.addEventListener("click", () => nextEvents(more));
}

async function nextEvents(more) {
  const table = document.getElementById("events");
  more.disabled = true;
  const headers = {};
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  const answer = await fetch(table.dataset.more + "?after=" + encodeURIComponent(more.dataset.after),
    { headers, credentials: "same-origin" });
  const data = await answer.json().catch(() => ({}));
  if (!answer.ok) { flash(errorText(data, answer.status), true); more.disabled = false; return; }
  appendRows(table.tBodies[0], data.rows);
  more.dataset.after = String(data.last_event_id);
  if (data.more) more.disabled = false;
  else document.getElementById("events-truncated").remove();
}

function liveRows(body, html) {
  const table = document.getElementById("events");
  if (document.getElementById("events-more")) return; // the button brings them, in order
  const limit = Number(table.dataset.rows || "200");
  if (body.children.length >= limit) {
    const note = document.createElement("p");
    note.id = "events-truncated";
    note.className = "muted";
    const more = document.createElement("button");
    more.id = "events-more";
    more.textContent = "Show the next events";
    more.dataset.after = body.lastElementChild?.dataset.id || "0";
    more.addEventListener("click", () => nextEvents(more));
    note.appendChild(more);
    table.after(note);
    return;
  }
  appendRows(body, html);
}

function setupExecution() {
  const section = document.getElementById("execution");
  if (!section) return;
  setupMoreEvents();
  const cancel = document.getElementById("cancel");
  if (cancel) {
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      const answer = await post(cancel.dataset.url, {});
      if (answer.status >= 400) { flash(errorText(answer.data, answer.status), true); cancel.disabled = false; return; }
      flash("execution " + answer.data.status);
    });
  }
  for (const id of ["rerun", "resume"]) {
    const button = document.getElementById(id);
    if (!button || !button.dataset.url) continue;
    button.addEventListener("click", async () => {
      button.disabled = true;
      const answer = await post(button.dataset.url, {});
      if (answer.status === 404 || answer.status === 405) { flash(id + " is not available on this server", true); return; }
      if (answer.status >= 400) { flash(errorText(answer.data, answer.status), true); button.disabled = false; return; }
      const next = answer.data.execution_id;
      if (next && next !== section.dataset.id) window.location.assign("/executions/" + encodeURIComponent(next));
      else window.location.reload();
    });
  }
  if (section.dataset.status !== "running" || !window.EventSource) return;
  const stream = new EventSource(section.dataset.stream + "?after=" + encodeURIComponent(section.dataset.lastEvent)
    + "&after_log=" + encodeURIComponent(section.dataset.lastLog || "0"));
  const rows = document.querySelector("#events tbody");
  stream.addEventListener("update", (event) => {
    const data = JSON.parse(event.data);
    paintSteps(data.steps);
    if (rows && data.rows) liveRows(rows, data.rows);
    appendLogs(data.logs || []);
    const badge = document.getElementById("exec-status");
    if (badge) { badge.textContent = data.status; badge.className = "badge " + data.status; }
  });
  stream.addEventListener("end", () => {
    stream.close();
    window.location.reload(); // the finished execution's results, logs and timeline, rendered whole
  });
}

// Lines a running step prints arrive with each update; they go under the step, as text (never HTML).
function appendLogs(lines) {
  for (const line of lines) {
    let pre = document.querySelector('pre.logs[data-step-logs="' + CSS.escape(line.step) + '"]');
    if (!pre) {
      const step = document.getElementById("step-" + line.step);
      if (!step) continue;
      const title = document.createElement("h4");
      title.textContent = "Logs";
      pre = document.createElement("pre");
      pre.className = "logs";
      pre.dataset.stepLogs = line.step;
      step.append(title, pre);
    }
    const where = line.loop_index === null || line.loop_index === undefined ? "" : "[" + line.loop_index + "] ";
    pre.append(document.createTextNode(where + line.line + "\n"));
  }
}

function setupRunForm() {
  const form = document.getElementById("run-form");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { path: form.elements.path.value, version: form.elements.version.value,
      payload: form.elements.payload.value.trim(), set: {} };
    for (const input of form.querySelectorAll("input[name^='set:']")) {
      body.set[input.name.slice(4)] = input.value;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    const answer = await post(form.dataset.url, body);
    button.disabled = false;
    if (answer.status >= 400) { flash(errorText(answer.data, answer.status), true); return; }
    window.location.assign(answer.data.url);
  });
}

// A schedule's "Run now": one execution at once, paused or not; its page opens.
function setupRunNow() {
  document.querySelectorAll("button.run-now").forEach((button) => button.addEventListener("click", async () => {
    button.disabled = true;
    const answer = await post("/console/actions/trigger-schedule", { name: button.dataset.schedule });
    if (answer.status >= 400) { flash(errorText(answer.data, answer.status), true); button.disabled = false; return; }
    window.location.assign(answer.data.url);
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  setupLogin();
  setupList();
  setupExecution();
  setupRunForm();
  setupRunNow();
});
