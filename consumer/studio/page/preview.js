// The preview page: draws the server's model, follows it live, and sends the
// paste box and the recent-events box to the server.
//
// Every text here comes from templates and events, which are untrusted: it is
// only ever set with textContent (the `el` helper), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const state = { model: null, pasted: null, announced: 0 };

// ---- live: server-sent events announce a new model version ----

function follow() {
  const live = $("live");
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => { live.textContent = "live"; live.className = "live on"; });
  source.addEventListener("error", () => {
    // EventSource reconnects by itself; say so meanwhile.
    live.textContent = "reconnecting…"; live.className = "live off";
  });
  source.addEventListener("model", (event) => {
    state.announced = Math.max(state.announced, Number(event.data));
    if (!state.model || state.model.version < state.announced) loadModel();
  });
}

let loading = null;
async function loadModel() {
  if (loading) return loading;
  loading = (async () => {
    let loaded = false;
    try {
      const response = await fetch("/api/model", { cache: "no-store" });
      if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
      state.model = await response.json();
      loaded = true;
      draw(state.model);
      if (state.pasted !== null) renderPasted(state.pasted);
    } catch (error) {
      $("status").textContent = `cannot load the preview: ${error.message}`;
      $("status").className = "status bad";
    } finally {
      loading = null;
    }
    // A version announced while this one was on its way: fetch again. (After a
    // failure, the next announcement retries.)
    if (loaded && state.model.version < state.announced) loadModel();
  })();
  return loading;
}

// ---- the model ----

function draw(model) {
  document.body.dataset.version = model.version;
  $("directory").textContent = model.directory;
  const count = model.problems.length;
  $("status").textContent = count === 0
    ? `✓ check passes · ${model.rules.length} rules`
    : `✗ ${count} problem${count === 1 ? "" : "s"} · ${model.rules.length} rules shown`;
  $("status").className = count === 0 ? "status ok" : "status bad";
  $("paste").maxLength = model.limits.event_bytes;
  if (!$("recent-topic").value && model.suggested_topic) $("recent-topic").value = model.suggested_topic;

  $("problems").hidden = count === 0;
  $("problem-list").replaceChildren(...model.problems.map(problemItem));
  $("rule-index").replaceChildren(...model.rules.map((rule) => el("a", {
    href: `#rule-${rule.id}`, class: rule.problems.length ? "has-problems" : null,
  }, rule.id)));
  $("rules").replaceChildren(...model.rules.map((rule) => ruleSection(rule, model)));
  drawRecent(model.recent);
}

function problemItem(problem) {
  const link = problem.rule ? el("a", { href: `#rule-${problem.rule}` }, problem.rule) : null;
  return el("li", { class: "problem" },
    el("code", { class: "where" }, problem.where), ": ", problem.text,
    link ? [" (", link, ")"] : null);
}

function ruleSection(rule, model) {
  const facts = [
    ["event", rule.events.join(", ")],
    ...rule.when.map((condition) => ["when", condition]),
    ["class", rule.class],
    ["ttl", rule.ttl],
    rule.priority ? ["priority", rule.priority] : null,
    rule.quiet_hours ? ["quiet hours", rule.quiet_hours] : null,
  ].filter(Boolean);
  return el("article", { class: `rule${rule.stale ? " stale" : ""}`, id: `rule-${rule.id}`, dataset: { rule: rule.id } },
    el("header", {},
      el("h2", {}, rule.id),
      el("code", { class: "where" }, rule.where),
      rule.stale ? el("span", { class: "note-box" }, "this file cannot be read now; showing the last version that could") : null),
    el("div", { class: "facts" }, facts.map(([name, value]) => el("span", {}, `${name} `, el("b", {}, value)))),
    el("div", { class: "costs" }, rule.variants.map((variant) => el("div", { class: "cost", dataset: { variant: variant.name } },
      rule.variants.length > 1 ? `${variant.name}: ` : "cost: ",
      el("span", { class: `tier tier-${variant.cost.tier}` }, variant.cost.tier), " ", variant.cost.text))),
    rule.problems.length
      ? el("ul", { class: "problem-list" }, rule.problems.map((p) => el("li", { class: "problem" }, el("code", { class: "where" }, p.where), ": ", p.text)))
      : null,
    rule.examples.map((example) => el("div", { class: "example", dataset: { example: example.name } },
      el("header", {}, el("h3", {}, `Example: ${example.name}`), el("code", { class: "where" }, example.where),
        example.now ? el("span", { class: "hint" }, `now = ${example.now}`) : null),
      outcomeView(example, model))));
}

// One outcome: a push per variant, side by side (personal, then shared), or why none.
function outcomeView(outcome, model) {
  if (outcome.invalid) return el("div", { class: "error-box" }, `The event is not valid: ${outcome.invalid}`);
  if (outcome.no_push) return el("div", { class: "note-box" }, `No push: ${outcome.no_push}`);
  return el("div", { class: "variants" }, outcome.variants.map((variant) => variantView(variant, model)));
}

function variantView(variant, model) {
  const label = variant.name === "shared" ? "Shared text" : "Personal text";
  if (variant.error) {
    return el("div", { class: "variant", dataset: { variant: variant.name } }, el("h4", {}, label),
      el("div", { class: "error-box" }, `Cannot be rendered: ${variant.error}`));
  }
  const limits = model.limits;
  const length = (key, limit) => el("span", { class: variant.lengths[key] > limit ? "over" : null },
    `${key} ${variant.lengths[key]}/${limit}`);
  return el("div", { class: "variant", dataset: { variant: variant.name } },
    el("h4", {}, label),
    el("div", { class: "phones" }, phone("ios", variant.screens.ios), phone("android", variant.screens.android, variant.screens.android_expanded)),
    el("p", { class: "meta" },
      length("title", limits.title), " · ", length("summary", limits.summary),
      variant.shortened.length ? el("span", { class: "over" }, ` · the service cuts the ${variant.shortened.join(" and ")} with “…”`) : null,
      variant.deeplink ? [" · opens ", el("code", {}, variant.deeplink)] : null,
      variant.collapse_key ? [" · collapse key ", el("code", {}, variant.collapse_key)] : null));
}

function phone(platform, screen, expanded) {
  const cut = screen.title.cut || screen.body.cut;
  return el("div", { class: `phone ${platform}`, dataset: { platform } },
    notification(platform, screen),
    el("div", { class: "caption" }, screen.name, cut ? el("span", { class: "cut" }, " · cut") : null,
      el("span", { class: "hint-light" }, ` — ${screen.note}`)),
    expanded ? el("details", {}, el("summary", {}, "expanded (pulled down)"), notification(platform, expanded)) : null);
}

function notification(platform, screen) {
  const header = platform === "ios"
    ? el("div", { class: "app" }, el("span", { class: "icon" }), "SHOP", el("span", { class: "time" }, "now"))
    : el("div", { class: "app" }, el("span", { class: "icon" }), "Shop · now");
  return el("div", { class: "notification" },
    header,
    el("div", { class: "title" }, screen.title.lines.join(" ")),
    el("div", { class: "body" }, screen.body.lines.map((line) => el("div", { class: "line" }, line))));
}

// ---- the paste box ----

async function renderPasted(text) {
  const result = $("paste-result");
  state.pasted = text;
  let answer;
  try {
    const response = await fetch("/api/render", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: text,
    });
    answer = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  } catch (error) {
    answer = { error: `the preview server did not answer: ${error.message}` };
  }
  if (answer.error) {
    result.replaceChildren(el("div", { class: "error-box" }, answer.error));
    return;
  }
  result.replaceChildren(
    answer.rule ? el("p", {}, "Rule ", el("a", { href: `#rule-${answer.rule.id}` }, answer.rule.id), " ", el("code", {}, answer.rule.where)) : null,
    answer.filled && answer.filled.length ? el("p", { class: "hint" }, `filled in: ${answer.filled.join(", ")}`) : null,
    outcomeView(answer, state.model));
}

function pasteSize() {
  const bytes = new TextEncoder().encode($("paste").value).length;
  const limit = state.model ? state.model.limits.event_bytes : 0;
  $("paste-size").textContent = limit ? `${bytes} of ${limit} bytes` : "";
}

// ---- recent events ----

async function loadRecent() {
  const status = $("recent-status");
  status.textContent = "reading…";
  const body = JSON.stringify({ topic: $("recent-topic").value, last: Number($("recent-last").value) });
  try {
    const response = await fetch("/api/recent", { method: "POST", headers: { "Content-Type": "application/json" }, body });
    const answer = await response.json();
    if (answer.error) {
      status.textContent = "";
      $("recent-result").replaceChildren(el("div", { class: "error-box" }, answer.error));
      return;
    }
    status.textContent = `${answer.records} record${answer.records === 1 ? "" : "s"}`
      + (answer.unfinished.length ? ` (not read to the end in time: ${answer.unfinished.join(", ")})` : "");
    await loadModel();
  } catch (error) {
    status.textContent = `the preview server did not answer: ${error.message}`;
  }
}

function drawRecent(recent) {
  if (!recent) return;
  const records = recent.records.map((record) => el("div", { class: "record", dataset: { where: record.where } },
    el("header", {}, el("h3", {}, record.where), el("span", { class: "hint" }, record.time),
      record.rule ? ["rule ", el("a", { href: `#rule-${record.rule.id}` }, record.rule.id)] : null),
    outcomeView(record, state.model)));
  $("recent-result").replaceChildren(
    records.length ? el("p", { class: "hint" }, `${recent.topic}: newest first, rendered with the files as they are now`)
      : el("p", { class: "hint" }, `${recent.topic} has no records`),
    ...records);
}

// ---- start ----

document.addEventListener("DOMContentLoaded", () => {
  $("paste-render").addEventListener("click", () => renderPasted($("paste").value));
  $("paste").addEventListener("input", pasteSize);
  $("recent-load").addEventListener("click", loadRecent);
  follow();
  loadModel();
});
