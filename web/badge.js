// <plumb-badge>: renders a plumb ScoreResponse (the JSON that POST
// /plumb.v1.ConfidenceService/Score returns) as an accessible confidence badge.
//
//   <script type="module" src="/badge.js"></script>
//   <plumb-badge src="/my/score-endpoint"></plumb-badge>      fetched with GET
//   el.response = scoreResponseJSON;                          or given as a property
//
// The badge shows the level and label ("85% · high"); hovering or focusing it (it is
// focusable) opens a panel with the answer, the prediction set, the action and its reasons in
// plain words, and a note when the user's framing moved the model. Colours pass WCAG AA
// contrast in light and dark schemes. No dependencies, no build step.

const REASONS = {
  REASON_ALTERNATIVES_PLAUSIBLE: "Other answers are also plausible",
  REASON_WORDING_DEPENDENT: "The answer depends on how the question is worded",
  REASON_MULTIPLE_READINGS: "The question can be read in more than one way",
  REASON_LOW_CONFIDENCE: "The model does not know the answer well enough",
  REASON_OPEN_SET: "The right answer may be none of those considered",
  REASON_SYCOPHANCY_RISK: "The way the question is framed moves the model's answer",
  REASON_NO_NEUTRAL_WORDING: "Every wording carried the user's view, so confidence is capped",
  REASON_UNCALIBRATED: "This confidence is not calibrated for this model and domain",
};

const ACTIONS = {
  ACTION_ANSWER: ["answer", "Answer shown"],
  ACTION_CLARIFY: ["clarify", "Ask what the question means"],
  ACTION_ABSTAIN: ["abstain", "The model does not know"],
};

// percent is a probability as a badge reads it (calibrate's badgePercent): rounded to 5 %, and
// 100 % or 0 % only for an exact 1 or 0.
function percent(p) {
  const v = Math.round(p * 20) * 5;
  if (v >= 100 && p < 1) return p >= 0.99 ? "> 99%" : "> 95%";
  if (v <= 0 && p > 0) return p <= 0.01 ? "< 1%" : "< 5%";
  return `${v}%`;
}

// The state a badge shows: its look follows the action first (clarify and abstain are never
// shown as a confident answer), then the level.
function stateOf(r) {
  if (!r.calibrated || r.badge?.level === "BADGE_LEVEL_UNCALIBRATED") return "uncalibrated";
  if (r.action === "ACTION_ABSTAIN") return "abstain";
  if (r.action === "ACTION_CLARIFY") return "clarify";
  return r.badge?.level === "BADGE_LEVEL_HIGH" ? "high" : "medium";
}

const ICONS = { high: "✓", medium: "◐", clarify: "?", abstain: "⊘", uncalibrated: "~" };

const STYLE = `
:host { display: inline-block; position: relative; font: 500 0.875rem/1.3 system-ui, sans-serif; }
.badge { display: inline-flex; align-items: center; gap: 0.35em; padding: 0.15em 0.6em;
  border-radius: 999px; border: 2px solid transparent; cursor: default; outline: none; }
.badge:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.icon { font-weight: 700; }
.panel { display: none; position: absolute; z-index: 10; top: calc(100% + 6px); left: 0;
  min-width: 18em; max-width: 26em; padding: 0.7em 0.9em; border-radius: 8px;
  background: var(--panel-bg); color: var(--panel-fg); border: 1px solid var(--panel-border);
  box-shadow: 0 4px 14px rgb(0 0 0 / 0.18); font-weight: 400; }
:host(:hover) .panel, .badge:focus + .panel, .panel:hover { display: block; }
.panel dl { margin: 0; display: grid; grid-template-columns: auto 1fr; gap: 0.25em 0.8em; }
.panel dt { font-weight: 600; }
.panel dd { margin: 0; }
.panel ul { margin: 0.4em 0 0; padding-left: 1.1em; }
.note { margin: 0.5em 0 0; font-weight: 600; }
/* Light scheme. Each pair: text on background ≥ 4.5:1. */
:host { --focus: #1d4ed8; --panel-bg: #ffffff; --panel-fg: #111827; --panel-border: #d1d5db; }
.high { background: #dcfce7; color: #14532d; border-color: #15803d; }
.medium { background: #fef3c7; color: #713f12; border-color: #b45309; }
.clarify { background: #dbeafe; color: #1e3a8a; border-color: #1d4ed8; border-style: dashed; }
.abstain { background: #fee2e2; color: #7f1d1d; border-color: #b91c1c; }
.uncalibrated { background: #f3f4f6; color: #374151; border-color: #6b7280; border-style: dotted; }
@media (prefers-color-scheme: dark) {
  :host { --focus: #93c5fd; --panel-bg: #1f2937; --panel-fg: #f9fafb; --panel-border: #4b5563; }
  .high { background: #052e16; color: #bbf7d0; border-color: #4ade80; }
  .medium { background: #422006; color: #fde68a; border-color: #f59e0b; }
  .clarify { background: #172554; color: #bfdbfe; border-color: #60a5fa; }
  .abstain { background: #450a0a; color: #fecaca; border-color: #f87171; }
  .uncalibrated { background: #111827; color: #d1d5db; border-color: #9ca3af; }
}
`;

function text(tag, content, cls) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  el.textContent = content;
  return el;
}

class PlumbBadge extends HTMLElement {
  static observedAttributes = ["src"];

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._response = null;
  }

  get response() { return this._response; }

  set response(r) {
    this._response = r;
    this.render();
  }

  attributeChangedCallback(name, _old, value) {
    if (name === "src" && value) this.load(value);
  }

  async load(src) {
    try {
      const res = await fetch(src, { headers: { Accept: "application/json" } });
      if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
      this.response = await res.json();
    } catch (err) {
      this.error(`Could not load the confidence: ${err.message}`);
    }
  }

  error(message) {
    this._response = null;
    this.shadowRoot.replaceChildren(Object.assign(document.createElement("style"), { textContent: STYLE }),
      Object.assign(text("span", message, "badge uncalibrated"), { role: "status" }));
    this.dataset.state = "error";
  }

  render() {
    const r = this._response;
    if (!r) {
      this.shadowRoot.replaceChildren();
      return;
    }
    if (r.error) {
      this.error(`Not scored: ${r.error.message || "the request was refused"}`);
      return;
    }
    // protojson leaves out a confidence of 0; anything else must be a probability, and the
    // action one plumb defines: what is not a ScoreResponse is said to be so, not drawn as one.
    const confidence = r.confidence ?? 0;
    if (typeof r !== "object" || !Object.hasOwn(ACTIONS, r.action ?? "") || typeof confidence !== "number" || !(confidence >= 0 && confidence <= 1)) {
      this.error("Not scored: this is not a plumb ScoreResponse");
      return;
    }
    const state = stateOf(r);
    const [actionWord, actionText] = ACTIONS[r.action];
    const label = r.badge?.label || percent(confidence);

    const badge = document.createElement("span");
    badge.className = `badge ${state}`;
    badge.tabIndex = 0;
    badge.setAttribute("role", "status");
    badge.setAttribute("aria-label",
      `Confidence ${percent(confidence).replace(">", "more than").replace("<", "less than").replace("%", " percent")}, ${label.split("·").pop().trim()}. Action: ${actionWord}.` +
      (state === "uncalibrated" ? " Not calibrated." : ""));
    badge.setAttribute("aria-describedby", "panel");
    badge.append(text("span", ICONS[state], "icon"), text("span", label, "label"));
    badge.querySelector(".icon").setAttribute("aria-hidden", "true");

    const panel = document.createElement("div");
    panel.className = "panel";
    panel.id = "panel";
    panel.setAttribute("role", "tooltip");
    const dl = document.createElement("dl");
    const row = (k, v) => dl.append(text("dt", k), text("dd", v));
    row("Answer", r.answer || "—");
    row("Could also be", (r.predictionSet?.answers ?? []).filter((a) => a !== r.answer).join(", ") || "nothing else likely");
    row("Action", actionText);
    panel.append(dl);
    const reasons = (r.reasons ?? []).map((x) => REASONS[x]).filter(Boolean);
    if (reasons.length) {
      const ul = document.createElement("ul");
      ul.className = "reasons";
      for (const reason of reasons) ul.append(text("li", reason));
      panel.append(ul);
    }
    if (r.sycophancy?.flagged) {
      panel.append(text("p",
        `The user's framing moved the model by ${Math.round((r.sycophancy.shift ?? 0) * 100)} points: the confidence above ignores it.`,
        "note sycophancy"));
    }
    this.dataset.state = state;
    this.shadowRoot.replaceChildren(Object.assign(document.createElement("style"), { textContent: STYLE }), badge, panel);
  }
}

if (!customElements.get("plumb-badge")) customElements.define("plumb-badge", PlumbBadge);
export { PlumbBadge };
