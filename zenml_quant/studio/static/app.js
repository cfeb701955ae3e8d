// The studio page: builds an edit plan from the layer table's selects, evaluates it through the
// JSON API, and shows its figures beside the original model's. No framework, no network beyond
// this server.
"use strict";

const ui = {
  plan: [],          // [{layer, op, value}]
  baseline: null,    // evaluation id of the original model
  shown: null,       // evaluation id whose figures are shown
  job: null,         // id of the job being followed
  state: null,
};

const $ = (sel) => document.querySelector(sel);
const OPS = ["replace", "remove", "scale", "activation", "head", "precision"];
const TARGET_LABELS = {
  quality: "quality", quality_drop: "quality drop", baseline: "original's quality",
  size: "TFLite size", peak_memory: "peak memory", latency: "latency", energy: "energy",
  error: "candidate",
};
const FIGURES = [
  ["accuracy", "accuracy", "up"],
  ["size_bytes", "TFLite size", "down"],
  ["peak_memory_bytes", "peak memory", "down"],
  ["latency_ms", "latency", "down"],
  ["energy_uj", "energy (estimate)", "down"],
  ["params", "parameters", "down"],
  ["macs", "MACs", "down"],
];

// The studio refuses a POST without the token it put in this page, and any non-JSON body.
const TOKEN = document.querySelector('meta[name="studio-token"]').content;

async function api(method, path, body) {
  const options = { method, headers: {} };
  if (method !== "GET") {
    options.headers["Content-Type"] = "application/json";
    options.headers["X-Studio-Token"] = TOKEN;
    options.body = JSON.stringify(body === undefined ? {} : body);
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = data.error || (data.detail && JSON.stringify(data.detail)) || response.statusText;
    throw new Error(detail);
  }
  return data;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
}

function fmt(name, value) {
  if (value === null || value === undefined) return "–";
  if (name === "accuracy") return (100 * value).toFixed(2) + " %";
  if (name.endsWith("_bytes")) return Math.round(value).toLocaleString("en-US") + " B";
  if (name === "latency_ms") return value < 1 ? (1000 * value).toFixed(1) + " µs" : value.toFixed(2) + " ms";
  if (name === "energy_uj") return value.toPrecision(3) + " µJ";
  return Math.round(value).toLocaleString("en-US");
}

function change(name, before, after, better) {
  if (before === null || before === undefined || after === null || after === undefined) return ["", ""];
  const diff = after - before;
  if (diff === 0) return ["no change", ""];
  let text;
  if (name === "accuracy") text = (diff > 0 ? "+" : "") + (100 * diff).toFixed(2) + " pts";
  else {
    const pct = before ? ` (${diff > 0 ? "+" : ""}${((100 * diff) / before).toFixed(1)} %)` : "";
    text = (diff > 0 ? "+" : "−") + fmt(name, Math.abs(diff)) + pct;
  }
  const good = better === "up" ? diff > 0 : diff < 0;
  return [text, good ? "better" : "worse"];
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

// -- the plan -----------------------------------------------------------------------------------
function setEdit(layer, op, keep, value) {
  ui.plan = ui.plan.filter((e) => !(e.layer === layer && e.op === op));
  if (!keep) ui.plan.push({ layer, op, value });
  refreshLayers();
}

function describe(edit) {
  const v = edit.value;
  switch (edit.op) {
    case "replace": return `replace ${edit.layer} by ${v}`;
    case "remove": return `remove ${edit.layer}`;
    case "scale": return `scale ${edit.layer}'s filters/units by ${v}`;
    case "activation": return `set ${edit.layer}'s activation to ${v}`;
    case "head": return `replace Flatten ${edit.layer} + Dense by global average pooling`;
    case "precision": return `keep ${edit.layer} in ${v}`;
  }
  return `${edit.op} ${edit.layer}`;
}

function renderPlan() {
  const list = $("#plan");
  list.replaceChildren(
    ...ui.plan.map((e) =>
      el("li", {}, describe(e),
        el("button", { type: "button", class: "secondary", title: "drop this edit",
          onclick: () => setEdit(e.layer, e.op, true) }, "×"))));
  $("#plan-empty").hidden = ui.plan.length > 0;
}

// -- layers -------------------------------------------------------------------------------------
async function refreshLayers() {
  renderPlan();
  try {
    const data = await api("POST", "/api/layers", { plan: ui.plan, mode: $("#mode").value });
    renderLayers(data.layers, data.options);
    showError("");
  } catch (err) {
    showError(`This plan cannot be built: ${err.message}`);
  }
}

function renderLayers(rows, options) {
  const body = $("#layers tbody");
  body.replaceChildren(
    ...rows.map((r) => {
      const edits = el("td", { class: "edits" });
      const byOp = options[r.layer] || {};
      for (const op of OPS) {
        const choices = byOp[op];
        if (!choices) continue;
        const select = el("select", { dataset: { layer: r.layer, op }, title: op });
        choices.forEach((c, i) => {
          const label = c.keep ? `${op}: keep` : `${op}: ${c.value === null ? "yes" : c.value}`;
          const option = el("option", { value: String(i) }, label);
          if (c.current) option.selected = true;
          select.append(option);
        });
        select.addEventListener("change", () => {
          const c = choices[Number(select.value)];
          setEdit(r.layer, op, c.keep, c.value);
        });
        edits.append(select, " ");
      }
      for (const line of r.edits) edits.append(el("span", { class: "edit-line" }, line));
      const sens = r.sensitivity_pts === null || r.sensitivity_pts === undefined
        ? "" : r.sensitivity_pts.toFixed(2) + " pts";
      return el("tr", { class: r.edits.length ? "edited" : "", dataset: { layer: r.layer } },
        el("td", {}, r.layer), el("td", {}, r.type), el("td", {}, r.output_shape),
        el("td", { class: "num" }, fmt("params", r.params)),
        el("td", { class: "num" }, fmt("macs", r.macs)),
        el("td", { class: "num" }, fmt("size_bytes", r.weight_bytes_int8)),
        el("td", { class: "num" }, fmt("size_bytes", r.weight_bytes_float32)),
        el("td", { dataset: { col: "precision" } }, r.precision || ""),
        el("td", { class: "num" }, sens),
        edits);
    }));
}

// -- evaluations --------------------------------------------------------------------------------
// How the accuracy was reached, with its cost: without fine-tuning, an edited model's accuracy
// says little, and the page says so.
function fineTuned(e) {
  if (e.fine_tune_epochs) {
    const cost = e.fine_tune_seconds === null || e.fine_tune_seconds === undefined ? "" : `, ${e.fine_tune_seconds.toFixed(1)} s`;
    return `after ${e.fine_tune_epochs} fine-tune epoch${e.fine_tune_epochs > 1 ? "s" : ""}${cost}`;
  }
  return e.edits && e.edits.length ? "not fine-tuned: may understate an edit" : "not fine-tuned";
}

async function showEvaluation(id) {
  const e = await api("GET", `/api/evaluations/${id}`);
  ui.shown = id;
  const base = e.baseline;
  $("#shown-label").textContent = `— ${e.label} (#${e.id}, ${e.mode})`;
  const body = $("#figures tbody");
  body.replaceChildren(
    ...FIGURES.map(([name, label, better]) => {
      const before = base ? base.figures[name] : null;
      const after = e.figures[name];
      const [text, cls] = change(name, before, after, better);
      let shownLabel = name === "latency_ms" ? `${label} (${ui.state.threads} thread${ui.state.threads > 1 ? "s" : ""})` : label;
      if (name === "accuracy") shownLabel = `${label} (${fineTuned(e)})`;
      return el("tr", {},
        el("td", {}, shownLabel),
        el("td", { class: "num", dataset: { figure: name, col: "baseline" } }, fmt(name, before)),
        el("td", { class: "num", dataset: { figure: name, col: "current" } }, fmt(name, after)),
        el("td", { class: `num ${cls}`, dataset: { figure: name, col: "change" } }, text));
    }));
  if (e.status !== "ok") showError(`Evaluation #${e.id} failed: ${e.error}`);
  const targets = $("#targets tbody");
  targets.replaceChildren(
    ...(e.targets.length ? e.targets.map((t) =>
      el("tr", { dataset: { target: t.target } },
        el("td", {}, TARGET_LABELS[t.target] || t.target),
        el("td", {}, t.reason),
        el("td", { class: t.met ? "pass" : "fail" }, t.met ? "pass" : "fail")))
      : [el("tr", {}, el("td", { colspan: "3" }, "Not checked: the evaluation failed."))]));
  const exportLink = $("#export");
  exportLink.href = `/api/evaluations/${id}/plan.yaml`;
  exportLink.classList.toggle("disabled", e.status !== "ok");
  await refreshHistory();
}

async function refreshHistory() {
  const state = await api("GET", "/api/state");
  ui.state = state;
  ui.baseline = state.baseline;
  $("#history tbody").replaceChildren(
    ...state.history.map((h) => {
      const f = h.figures || {};
      const targets = h.status !== "ok" ? h.error : h.missed.length ? h.missed.join("; ") : "all met";
      return el("tr", { class: h.id === ui.shown ? "shown" : "", dataset: { evaluation: h.id } },
        el("td", {}, h.id),
        el("td", {}, h.lines.length ? h.lines.join("; ") : "original model"),
        el("td", {}, h.mode), el("td", {}, fineTuned(h)),
        el("td", { class: "num" }, fmt("accuracy", f.accuracy)),
        el("td", { class: "num" }, fmt("size_bytes", f.size_bytes)),
        el("td", { class: "num" }, fmt("peak_memory_bytes", f.peak_memory_bytes)),
        el("td", { class: "num" }, fmt("latency_ms", f.latency_ms)),
        el("td", {}, targets),
        el("td", {},
          el("button", { type: "button", class: "secondary", onclick: () => showEvaluation(h.id) }, "show"),
          el("button", { type: "button", class: "secondary", onclick: () => loadPlan(h.edits, h.mode) }, "edit")));
    }));
}

function loadPlan(edits, mode) {
  ui.plan = edits.map((e) => ({ layer: e.layer, op: e.op, value: e.value === undefined ? null : e.value }));
  if (mode) $("#mode").value = mode;
  refreshLayers();
}

// -- jobs ---------------------------------------------------------------------------------------
function busy(on) {
  $("#evaluate").disabled = on;
  $("#sensitivity").disabled = on;
  $("#job").hidden = !on;
}

async function follow(jobId, onDone) {
  ui.job = jobId;
  busy(true);
  for (;;) {
    const job = await api("GET", `/api/jobs/${jobId}`);
    $("#progress").value = job.fraction === null ? 0 : job.fraction;
    if (job.fraction === null) $("#progress").removeAttribute("value");
    $("#phase").textContent = `${job.kind}: ${job.phase}` + (job.seconds ? ` (${job.seconds.toFixed(0)} s)` : "");
    if (["done", "failed", "cancelled"].includes(job.status)) {
      busy(false);
      ui.job = null;
      if (job.status === "failed") showError(`${job.kind} failed: ${job.error}`);
      else if (job.status === "cancelled") showError(`${job.kind} cancelled.`);
      else await onDone(job.result);
      $("#phase").textContent = job.status;
      return job;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function evaluate() {
  showError("");
  const epochs = Number($("#epochs").value || 0);
  try {
    const job = await api("POST", "/api/evaluate",
      { plan: ui.plan, mode: $("#mode").value, fine_tune_epochs: ui.plan.length ? epochs : 0 });
    await follow(job.id, (result) => showEvaluation(result.evaluation));
  } catch (err) {
    showError(err.message);
  }
}

async function profileSensitivity() {
  showError("");
  try {
    const job = await api("POST", "/api/sensitivity");
    await follow(job.id, () => refreshLayers());
  } catch (err) {
    showError(err.message);
  }
}

// -- the pipeline run's summary (read-only) ------------------------------------------------------
function showRun(run) {
  if (!run) return;
  $("#run-card").hidden = false;
  const gate = run.gate;
  $("#run-gate").textContent = gate === null ? "No deployment gate ran." :
    `Deployment gate ${gate.passed ? "passed: " + gate.selected : "failed"}; ${gate.promotion}.`;
  $("#run tbody").replaceChildren(...run.candidates.map((c) => el("tr", {},
    el("td", {}, c.name), el("td", {}, c.status),
    el("td", {}, c.accuracy === null ? "" : `${(100 * c.accuracy).toFixed(2)} %`),
    el("td", {}, c.size_bytes === null ? "" : `${c.size_bytes.toLocaleString("en-US")} B`),
    el("td", {}, c.reason || ""))));
}

// -- start --------------------------------------------------------------------------------------
async function start() {
  const state = await api("GET", "/api/state");
  ui.state = state;
  $("#about").textContent = `${state.model} · ${state.data.train.toLocaleString("en-US")} training, ` +
    `${state.data.validation.toLocaleString("en-US")} validation examples · latency at ` +
    `${state.threads} thread${state.threads > 1 ? "s" : ""} on this machine`;
  $("#mode").replaceChildren(...state.modes.map((m) => el("option", { value: m }, m)));
  $("#epochs").max = state.max_fine_tune_epochs;
  $("#epochs").value = state.default_fine_tune_epochs;
  $("#suggestions").replaceChildren(
    ...(state.suggestions.length ? state.suggestions.map((s) =>
      el("li", { dataset: { suggestion: s.index } }, `${s.label}: ${s.lines.join("; ") || "no edits"}`,
        el("button", { type: "button", class: "secondary", onclick: () => loadPlan(s.edits) }, "load")))
      : [el("li", {}, "None given (start the studio with --suggestions).")]));
  showRun(state.run);
  $("#evaluate").addEventListener("click", evaluate);
  $("#sensitivity").addEventListener("click", profileSensitivity);
  $("#cancel").addEventListener("click", () => ui.job !== null && api("POST", `/api/jobs/${ui.job}/cancel`));
  $("#clear").addEventListener("click", () => { ui.plan = []; refreshLayers(); });
  $("#mode").addEventListener("change", refreshLayers);
  await refreshLayers();
  if (state.active_job !== null) await follow(state.active_job, () => {});
  const fresh = await api("GET", "/api/state");
  const last = fresh.history.length ? fresh.history[fresh.history.length - 1].id : null;
  if (last !== null) await showEvaluation(last);
}

start().catch((err) => showError(err.message));
