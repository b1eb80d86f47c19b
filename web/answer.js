// <plumb-answer>: renders a long answer with each of its claims marked by what plumb says to do
// with it — the claims of the request, and the ScoreResponse of POST
// /plumb.v1.ConfidenceService/Score:
//
//   <script type="module" src="/answer.js"></script>
//   <plumb-answer id="a"></plumb-answer>
//   a.claims = request.claims;   // [{id, text}, …], in the answer's order
//   a.response = response;       // its ScoreResponse (response.claims: a score per claim)
//
// A kept claim (CLAIM_ACTION_KEEP, within the profile's factuality guarantee) reads plainly; a
// flagged one (outside it, more likely true than not) is underlined; a dropped one (more likely
// false) is struck through, and the dropped claims can be collapsed with one button. Each claim
// is focusable: on hover or focus a panel gives its confidence, what to do with it and why. A
// summary says how many claims are verified. Text is set with textContent only: a claim is
// never markup. Colours pass WCAG AA contrast in light and dark schemes. No dependencies.

const REASONS = {
  REASON_LOW_CONFIDENCE: "The model's other answers rarely say this",
  REASON_SYCOPHANCY_RISK: "The user's framing made the model say this more",
  REASON_UNCALIBRATED: "This confidence is not calibrated for this model and domain",
  REASON_NO_NEUTRAL_WORDING: "Every wording carried the user's view",
};

const ACTIONS = {
  CLAIM_ACTION_KEEP: ["keep", "Verified: within the factuality guarantee"],
  CLAIM_ACTION_FLAG: ["flag", "Unverified: more likely true than not, outside the guarantee"],
  CLAIM_ACTION_DROP: ["drop", "Doubtful: more likely false"],
};

// percent never reads 100 % or 0 % for a probability that is not exactly 1 or 0.
function percent(p) {
  if (p >= 1) return "100%";
  if (p <= 0) return "0%";
  const v = Math.round(p * 100);
  if (v >= 100) return "> 99%";
  if (v <= 0) return "< 1%";
  return `${v}%`;
}

const STYLE = `
:host { display: block; font: 1rem/1.6 system-ui, sans-serif; color: var(--fg); background: var(--bg);
  --fg: #111827; --bg: #ffffff; --flag: #92400e; --drop: #b91c1c; --drop-fg: #4b5563; --focus: #1d4ed8;
  --panel-bg: #ffffff; --panel-fg: #111827; --panel-border: #d1d5db; }
@media (prefers-color-scheme: dark) {
  :host { --fg: #f3f4f6; --bg: #111827; --flag: #fbbf24; --drop: #f87171; --drop-fg: #d1d5db; --focus: #93c5fd;
    --panel-bg: #1f2937; --panel-fg: #f9fafb; --panel-border: #4b5563; }
}
.summary { font-weight: 600; margin: 0 0 0.4em; display: flex; gap: 0.8em; align-items: baseline; flex-wrap: wrap; }
.summary button { font: inherit; font-weight: 400; font-size: 0.875rem; color: var(--fg); background: transparent;
  border: 1px solid var(--panel-border); border-radius: 6px; padding: 0.1em 0.6em; cursor: pointer; }
.text { margin: 0; }
.claim { position: relative; outline: none; border-radius: 3px; }
.claim:focus-visible { outline: 3px solid var(--focus); outline-offset: 1px; }
.keep { }
.flag { text-decoration: underline dotted var(--flag) 2px; text-underline-offset: 3px; }
.flag::after { content: " ?"; color: var(--flag); font-weight: 700; font-size: 0.8em; }
.drop { text-decoration: line-through var(--drop) 2px; color: var(--drop-fg); }
:host([data-collapsed]) .drop { display: none; }
.panel { display: none; position: absolute; z-index: 10; top: calc(100% + 4px); left: 0; min-width: 16em; max-width: 24em;
  padding: 0.6em 0.8em; border-radius: 8px; background: var(--panel-bg); color: var(--panel-fg);
  border: 1px solid var(--panel-border); box-shadow: 0 4px 14px rgb(0 0 0 / 0.18); font-size: 0.875rem;
  font-weight: 400; text-decoration: none; line-height: 1.4; }
.claim:hover > .panel, .claim:focus > .panel { display: block; }
.panel ul { margin: 0.3em 0 0; padding-left: 1.1em; }
`;

function text(tag, content, cls) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  el.textContent = content;
  return el;
}

class PlumbAnswer extends HTMLElement {
  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._claims = null;
    this._response = null;
  }

  get claims() { return this._claims; }
  set claims(c) { this._claims = c; this.render(); }
  get response() { return this._response; }
  set response(r) { this._response = r; this.render(); }

  invalid(message) {
    this.dataset.state = "invalid";
    this.shadowRoot.replaceChildren(Object.assign(document.createElement("style"), { textContent: STYLE }),
      Object.assign(text("p", message, "summary"), { role: "status" }));
  }

  render() {
    const r = this._response;
    const claims = this._claims;
    if (!r || !claims) {
      this.shadowRoot.replaceChildren();
      return;
    }
    if (r.error) {
      this.invalid(`Not scored: ${String(r.error.message || "the request was refused")}`);
      return;
    }
    if (!Array.isArray(claims) || !Array.isArray(r.claims)) {
      this.invalid("Invalid response: no scores for the claims");
      return;
    }
    const scores = new Map();
    for (const s of r.claims) if (s && typeof s === "object") scores.set(String(s.id ?? ""), s);
    const paragraph = document.createElement("p");
    paragraph.className = "text";
    let kept = 0, dropped = 0;
    claims.forEach((c, i) => {
      const s = scores.get(String(c?.id ?? "")) ?? r.claims[i] ?? {};
      const [word, meaning] = Object.hasOwn(ACTIONS, s.action) ? ACTIONS[s.action] : ["unknown", "Not scored"];
      if (word === "keep") kept++;
      if (word === "drop") dropped++;
      const span = document.createElement("span");
      span.className = `claim ${word}`;
      span.dataset.action = word;
      span.tabIndex = 0;
      span.setAttribute("aria-describedby", `panel-${i}`);
      span.append(document.createTextNode(String(c?.text ?? "")));
      const panel = document.createElement("span");
      panel.className = "panel";
      panel.id = `panel-${i}`;
      panel.setAttribute("role", "tooltip");
      panel.append(text("strong", `${percent(Number(s.confidence) || 0)} likely true`), document.createElement("br"),
        document.createTextNode(meaning));
      const reasons = (Array.isArray(s.reasons) ? s.reasons : []).filter((x) => Object.hasOwn(REASONS, x)).map((x) => REASONS[x]);
      if (reasons.length) {
        const ul = document.createElement("ul");
        for (const reason of reasons) ul.append(text("li", reason));
        panel.append(ul);
      }
      span.setAttribute("aria-label", `${String(c?.text ?? "")} — ${meaning}, ${percent(Number(s.confidence) || 0)} likely true`);
      span.append(panel);
      paragraph.append(span, document.createTextNode(" "));
    });
    const summary = document.createElement("p");
    summary.className = "summary";
    summary.setAttribute("role", "status");
    summary.append(text("span", `${kept} of ${claims.length} claims verified`, "count"));
    if (dropped > 0) {
      const toggle = document.createElement("button");
      toggle.type = "button";
      const label = () => {
        const collapsed = this.hasAttribute("data-collapsed");
        toggle.textContent = collapsed ? `Show ${dropped} doubtful` : `Hide ${dropped} doubtful`;
        toggle.setAttribute("aria-expanded", String(!collapsed));
      };
      toggle.addEventListener("click", () => { this.toggleAttribute("data-collapsed"); label(); });
      label();
      summary.append(toggle);
    }
    this.dataset.state = "scored";
    this.shadowRoot.replaceChildren(Object.assign(document.createElement("style"), { textContent: STYLE }), summary, paragraph);
  }
}

if (!customElements.get("plumb-answer")) customElements.define("plumb-answer", PlumbAnswer);
export { PlumbAnswer, percent };
