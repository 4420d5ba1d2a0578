// cfai playground: a form fitted to the chosen model's task, submitted to
// /api/runs/ with the session's CSRF token, followed live over Server-Sent Events.
(function () {
  "use strict";

  const catalog = JSON.parse(document.getElementById("catalog-data").textContent);
  const history = JSON.parse(document.getElementById("history-data").textContent);
  const form = document.getElementById("run-form");
  const modelSelect = document.getElementById("model");
  const fieldsBox = document.getElementById("fields");
  const statusText = document.getElementById("status-text");
  const progress = document.getElementById("progress");
  const errorsBox = document.getElementById("errors");
  const streamBox = document.getElementById("stream");
  const resultBox = document.getElementById("result");
  const historyBody = document.querySelector("#history tbody");
  let source = null;

  const byName = {};
  for (const group of catalog) {
    for (const m of group.models) byName[m.name] = { group, model: m };
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }

  function csrfToken() {
    const input = form.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // --- the form ---------------------------------------------------------------

  function messageRow(role, content) {
    const row = el("div", { class: "message" });
    const select = el("select", { class: "role", "aria-label": "role" });
    for (const r of ["system", "user", "assistant"]) {
      select.append(el("option", { value: r, text: r, selected: r === role }));
    }
    row.append(select, el("textarea", { class: "content", rows: 2, "aria-label": "message" }));
    row.querySelector("textarea").value = content || "";
    const remove = el("button", { type: "button", class: "link", text: "remove" });
    remove.addEventListener("click", () => row.remove());
    row.append(remove);
    return row;
  }

  function renderField(field, model) {
    const id = "f-" + field.name;
    switch (field.kind) {
      case "mode": {
        const box = el("fieldset", { class: "mode" }, el("legend", { text: "Input" }));
        for (const choice of field.choices) {
          const radio = el("input", { type: "radio", name: "mode", value: choice, checked: choice === "prompt" });
          radio.addEventListener("change", syncMode);
          box.append(el("label", { class: "inline" }, radio, " " + choice));
        }
        return box;
      }
      case "prompt":
        return el("label", { class: "block", dataset: { field: field.name, kind: "prompt" } }, field.label,
          el("textarea", { id, name: field.name, rows: 4, text: field.value || "" }));
      case "text":
        return el("label", { class: "block" }, field.label,
          el("input", { id, name: field.name, value: field.value || "", dataset: { kind: "text" } }));
      case "lines":
        return el("label", { class: "block" }, field.label,
          el("textarea", { id, name: field.name, rows: 4, dataset: { kind: "lines" } }));
      case "messages": {
        const box = el("div", { id: "messages", class: "block", dataset: { field: "messages", kind: "messages" } },
          el("span", { text: field.label }));
        const list = el("div", { class: "message-list" });
        list.append(messageRow("system", "You are a helpful assistant."), messageRow("user", ""));
        const add = el("button", { type: "button", class: "link", text: "+ add message" });
        add.addEventListener("click", () => list.append(messageRow("user", "")));
        box.append(list, add);
        return box;
      }
      case "slider": {
        const out = el("output", { for: id, text: String(field.value) });
        const input = el("input", {
          id, name: field.name, type: "range", min: field.min, max: field.max,
          step: field.step, value: field.value, dataset: { kind: "slider" },
        });
        input.addEventListener("input", () => { out.textContent = input.value; });
        return el("label", { class: "block slider" }, field.label + " ", out, input);
      }
      case "checkbox":
        if (field.streams_only && !model.streams) return null;
        return el("label", { class: "inline" },
          el("input", { id, name: field.name, type: "checkbox", checked: true, dataset: { kind: "checkbox" } }),
          " " + field.label);
      default:
        return null;
    }
  }

  function syncMode() {
    const chosen = form.querySelector("input[name=mode]:checked");
    if (!chosen) return;
    const prompt = fieldsBox.querySelector("[data-kind=prompt][data-field=prompt]");
    const messages = fieldsBox.querySelector("#messages");
    if (prompt) prompt.hidden = chosen.value !== "prompt";
    if (messages) messages.hidden = chosen.value !== "messages";
  }

  function renderForm() {
    const entry = byName[modelSelect.value];
    if (!entry) return;
    document.getElementById("task-name").textContent = entry.group.task;
    fieldsBox.replaceChildren();
    for (const field of entry.group.fields) {
      const node = renderField(field, entry.model);
      if (node) fieldsBox.append(node);
    }
    for (const file of entry.model.files) {
      const accept = file.kind === "audio" ? "audio/*" : "image/*";
      fieldsBox.append(el("label", { class: "block" }, `${file.kind} file (${file.name})`,
        el("input", { type: "file", name: file.name, accept, dataset: { kind: "file" } })));
    }
    syncMode();
  }

  function collectInput() {
    const input = {};
    const mode = form.querySelector("input[name=mode]:checked");
    for (const node of fieldsBox.querySelectorAll("[name]")) {
      const kind = node.dataset.kind || (node.tagName === "TEXTAREA" ? "prompt" : "");
      if (node.name === "mode" || node.type === "file") continue;
      if (mode && node.name === "prompt" && mode.value !== "prompt") continue;
      if (kind === "slider") input[node.name] = Number(node.value);
      else if (kind === "checkbox") { if (node.checked) input[node.name] = true; }
      else if (kind === "lines") input[node.name] = node.value.split("\n").map((s) => s.trim()).filter(Boolean);
      else if (node.value.trim() !== "") input[node.name] = node.value;
    }
    if (mode && mode.value === "messages") {
      input.messages = [...fieldsBox.querySelectorAll(".message")]
        .map((row) => ({ role: row.querySelector(".role").value, content: row.querySelector(".content").value }))
        .filter((m) => m.content.trim() !== "");
    }
    return input;
  }

  // --- rendering results ----------------------------------------------------------

  function setStatus(status, detail) {
    progress.dataset.status = status;
    statusText.textContent = detail ? `${status}: ${detail}` : status;
  }

  function showErrors(body, status) {
    errorsBox.hidden = false;
    if (body && typeof body === "object") {
      errorsBox.replaceChildren(...Object.entries(body).map(([k, v]) =>
        el("div", { text: `${k}: ${Array.isArray(v) ? v.join(" ") : typeof v === "object" ? JSON.stringify(v) : v}` })));
    } else {
      errorsBox.textContent = `HTTP ${status}`;
    }
  }

  function mediaUrl(run, key) {
    const value = run.result && run.result[key];
    if (typeof value === "string" && value.startsWith("/")) return value;
    const media = (run.media || []).find((m) => m.role === "output" && m.field === key);
    return media ? media.url : null;
  }

  function labelTable(items, columns) {
    const table = el("table", { class: "labels" });
    table.append(el("tr", {}, ...columns.map((c) => el("th", { text: c }))));
    for (const item of items) {
      const score = Number(item.score);
      const bar = el("div", { class: "bar-fill", style: `width:${Math.round(score * 100)}%` });
      const row = el("tr", {}, el("td", { text: item.label }), el("td", {}, el("div", { class: "bar-track" }, bar), score.toFixed(4)));
      if (columns.length > 2) row.append(el("td", { text: item.box ? JSON.stringify(item.box) : "" }));
      table.append(row);
    }
    return table;
  }

  function renderResult(run) {
    resultBox.replaceChildren();
    if (run.status === "failed") {
      const err = run.error || {};
      resultBox.append(el("p", { class: "error", text: `Failed${err.code ? ` (${err.code})` : ""}: ${err.message || "unknown error"}` }));
    }
    if (run.status === "canceled") resultBox.append(el("p", { class: "muted", text: "Canceled." }));
    const result = run.result;
    if (!result) return;
    const image = mediaUrl(run, "image");
    const audio = mediaUrl(run, "audio");
    if (image) resultBox.append(el("img", { src: image, alt: "generated image", class: "generated" }));
    if (audio) resultBox.append(el("audio", { src: audio, controls: true, class: "generated" }));
    const items = Array.isArray(result) ? result : null;
    if (typeof result.response === "string") {
      streamBox.hidden = false;
      streamBox.textContent = result.response;
    } else if (typeof result.text === "string") {
      resultBox.append(el("pre", { class: "text-result", text: result.text }));
    } else if (typeof result.translated_text === "string") {
      resultBox.append(el("pre", { class: "text-result", text: result.translated_text }));
    } else if (typeof result.summary === "string") {
      resultBox.append(el("pre", { class: "text-result", text: result.summary }));
    } else if (typeof result.description === "string") {
      resultBox.append(el("pre", { class: "text-result", text: result.description }));
    } else if (Array.isArray(result.data)) {
      const shape = result.shape || [result.data.length, (result.data[0] || []).length];
      const box = el("div", { class: "embeddings" }, el("p", { text: `${shape[0]} vector(s) × ${shape[1]} dimensions` }));
      result.data.slice(0, 10).forEach((vec, i) => {
        const head = vec.slice(0, 8).map((x) => Number(x).toFixed(4)).join(", ");
        box.append(el("code", { text: `[${i}] ${head}${vec.length > 8 ? ", …" : ""}` }), el("br"));
      });
      resultBox.append(box);
    } else if (items && items.length && "label" in items[0]) {
      resultBox.append(labelTable(items, "box" in items[0] ? ["label", "score", "box"] : ["label", "score"]));
    } else if (!image && !audio) {
      resultBox.append(el("pre", { class: "json", text: JSON.stringify(result, null, 2) }));
    }
    if (run.usage) resultBox.append(el("p", { class: "muted", text: `usage: ${JSON.stringify(run.usage)}` }));
  }

  function costText(run) {
    if (!run.cost) return "—";
    return `${run.cost.usd}${run.cost.estimated ? " (est.)" : ""}`;
  }

  function historyRow(run) {
    const links = el("td", {},
      el("a", { href: run.urls.self, text: "json" }), " ",
      ...(run.media || []).filter((m) => m.role === "output").map((m) => el("a", { href: m.url, text: m.field, class: "media-link" })));
    return el("tr", { dataset: { run: run.id } },
      el("td", { text: new Date(run.created_at).toLocaleString() }),
      el("td", { text: run.model }), el("td", { text: run.task }),
      el("td", {}, el("span", { class: `badge ${run.status}`, text: run.status })),
      el("td", { text: costText(run) }), links);
  }

  function upsertHistory(run) {
    const row = historyRow(run);
    const existing = historyBody.querySelector(`tr[data-run="${run.id}"]`);
    if (existing) existing.replaceWith(row); else historyBody.prepend(row);
  }

  // --- submitting and following --------------------------------------------------

  function follow(run) {
    if (source) source.close();
    setStatus(run.status, "waiting for the worker");
    source = new EventSource(run.urls.events);
    source.addEventListener("status", (e) => {
      const data = JSON.parse(e.data);
      const note = { queued: "waiting for a worker", running: "the model is running" }[data.status];
      setStatus(data.status, data.attempt > 1 ? `attempt ${data.attempt}` : note);
    });
    source.addEventListener("output", (e) => {
      // Text deltas of streamed generation: a string, or an object carrying one.
      const data = JSON.parse(e.data);
      const delta = typeof data === "string" ? data : (data.delta ?? data.response ?? data.text ?? "");
      streamBox.hidden = false;
      streamBox.textContent += delta;
    });
    source.addEventListener("done", (e) => {
      source.close();
      source = null;
      const final = JSON.parse(e.data);
      setStatus(final.status, final.upstream_ms != null ? `${final.upstream_ms} ms upstream` : "");
      renderResult(final);
      upsertHistory(final);
      document.getElementById("submit").disabled = false;
    });
    source.onerror = () => {
      // The server closes the stream after "done"; anything else is a lost connection.
      if (source) { source.close(); source = null; setStatus("disconnected", "reload to see the outcome"); }
      document.getElementById("submit").disabled = false;
    };
  }

  async function submit(event) {
    event.preventDefault();
    errorsBox.hidden = true;
    resultBox.replaceChildren();
    streamBox.textContent = "";
    streamBox.hidden = true;
    const model = modelSelect.value;
    const input = collectInput();
    const files = [...fieldsBox.querySelectorAll("input[type=file]")].filter((f) => f.files.length);
    let body;
    const headers = { "X-CSRFToken": csrfToken(), Accept: "application/json" };
    if (files.length) {
      body = new FormData();
      body.append("model", model);
      body.append("input", JSON.stringify(input));
      for (const f of files) body.append(f.name, f.files[0]);
    } else {
      body = JSON.stringify({ model, input });
      headers["Content-Type"] = "application/json";
    }
    document.getElementById("submit").disabled = true;
    setStatus("submitting");
    let response;
    try {
      response = await fetch(window.CFAI_API, { method: "POST", body, headers, credentials: "same-origin" });
    } catch (err) {
      setStatus("error", String(err));
      document.getElementById("submit").disabled = false;
      return;
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      setStatus("rejected", `HTTP ${response.status}`);
      showErrors(data, response.status);
      document.getElementById("submit").disabled = false;
      return;
    }
    upsertHistory(data);
    follow(data);
  }

  modelSelect.addEventListener("change", renderForm);
  form.addEventListener("submit", submit);
  history.forEach((run) => historyBody.append(historyRow(run)));
  renderForm();
})();
