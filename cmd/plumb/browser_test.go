package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/plumbhq/plumb/api"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
	"github.com/plumbhq/plumb/simulate"
)

// The <plumb-badge> component in a real browser: Debian's Chromium, headless, driven through
// the DevTools protocol (chromedp), on the demo page of a real `plumb serve --http-addr`.

// chromium returns the Chromium binary, or skips the test when there is none — unless
// PLUMB_REQUIRE_BROWSER=1 (set by .ci/run, which installs it), when it fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("PLUMB_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("PLUMB_REQUIRE_BROWSER") == "1" {
		t.Fatal("no Chromium (PLUMB_REQUIRE_BROWSER=1): apt-get install chromium")
	}
	t.Skip("no Chromium: apt-get install chromium, or set PLUMB_CHROMIUM; PLUMB_REQUIRE_BROWSER=1 fails instead")
	return ""
}

var httpRE = regexp.MustCompile(`HTTP on (https?://\S+)`)

// httpBase returns the HTTP address the server said it serves on.
func (s *served) httpBase(t *testing.T) string {
	t.Helper()
	m := httpRE.FindStringSubmatch(s.log.String())
	if m == nil {
		t.Fatalf("no HTTP address: %s", s.log.String())
	}
	return m[1]
}

// browserContext starts a headless Chromium of its own (a 1000×800 window) for the test, with
// 90 s for everything the test does in it; it is closed when the test ends.
func browserContext(t *testing.T, browser string) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancel(); cancelBrowser(); cancelAlloc() })
	return ctx
}

// states scores simulated questions over HTTP under a fitted profile, and the example under the
// built-in one, and returns one real response for each state the badge shows.
func states(t *testing.T, s *served, base string) map[string]*plumbv1.ScoreResponse {
	t.Helper()
	var fit []*plumbv1.LabeledExample
	var held []*plumbv1.ScoreRequest
	for ex := range simulate.All(&simulate.Config{Questions: 2600, Seed: 11, Stance: 1}) {
		if len(fit) < 2000 {
			fit = append(fit, api.Labeled(&ex))
		} else {
			held = append(held, api.Request(&ex.Question))
		}
	}
	c := dial(t, s.addr, nil)
	if _, err := c.Fit(context.Background(), &plumbv1.FitConfig{Name: "demo"}, seqOf(fit)); err != nil {
		t.Fatal(err)
	}
	scoreHTTP := func(r *plumbv1.ScoreRequest) *plumbv1.ScoreResponse {
		b, _ := protojson.Marshal(r)
		resp, err := http.Post(base+"/plumb.v1.ConfidenceService/Score", "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out plumbv1.ScoreResponse
		var raw json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d: %v %s", resp.StatusCode, err, raw)
		}
		if err := protojson.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		return &out
	}
	out := map[string]*plumbv1.ScoreResponse{}
	for _, r := range held {
		r.Profile = "demo"
		resp := scoreHTTP(r)
		var state string
		switch {
		case resp.GetSycophancy().GetFlagged() && resp.GetAction() == plumbv1.Action_ACTION_ANSWER:
			state = "sycophancy"
		case resp.GetAction() == plumbv1.Action_ACTION_CLARIFY:
			state = "clarify"
		case resp.GetAction() == plumbv1.Action_ACTION_ABSTAIN:
			state = "abstain"
		case resp.GetBadge().GetLevel() == plumbv1.BadgeLevel_BADGE_LEVEL_HIGH:
			state = "high"
		default:
			state = "medium"
		}
		if out[state] == nil {
			out[state] = resp
		}
	}
	example, err := os.ReadFile("../../testdata/score-request.json")
	if err != nil {
		t.Fatal(err)
	}
	var ex plumbv1.ScoreRequest
	if err := protojson.Unmarshal(example, &ex); err != nil {
		t.Fatal(err)
	}
	out["uncalibrated"] = scoreHTTP(&ex)
	for _, state := range []string{"high", "medium", "clarify", "abstain", "uncalibrated", "sycophancy"} {
		if out[state] == nil {
			t.Fatalf("no held-out question scored as %s", state)
		}
	}
	return out
}

// rgb parses a computed CSS colour, rgb(r, g, b).
func rgb(t *testing.T, css string) [3]float64 {
	t.Helper()
	m := regexp.MustCompile(`rgba?\((\d+), (\d+), (\d+)`).FindStringSubmatch(css)
	if m == nil {
		t.Fatalf("not an rgb colour: %q", css)
	}
	var c [3]float64
	for i := range c {
		v, _ := strconv.Atoi(m[i+1])
		c[i] = float64(v)
	}
	return c
}

// contrast is WCAG 2's contrast ratio of two sRGB colours.
func contrast(a, b [3]float64) float64 {
	lum := func(c [3]float64) float64 {
		var l [3]float64
		for i, v := range c {
			v /= 255
			if v <= 0.04045 {
				l[i] = v / 12.92
			} else {
				l[i] = math.Pow((v+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
	}
	x, y := lum(a), lum(b)
	return (math.Max(x, y) + 0.05) / (math.Min(x, y) + 0.05)
}

// TestBadgeInChromium: the demo page scores the example request through the HTTP endpoint and
// shows its badge; then a badge for each state — a confident and a medium answer, clarify,
// abstain, uncalibrated, a flagged sycophancy — renders its label, an aria-label that reads
// the confidence and the action, colours of AA contrast in the light and the dark scheme (and a
// look of its own), and, reached with the Tab key, a panel with the answer, the action, the
// reasons in plain words and the sycophancy note. Screenshots of each state are saved as test
// artefacts (go test -artifacts).
func TestBadgeInChromium(t *testing.T) {
	browser := chromium(t)
	s := serveArgs(t, "--store", filepath.Join(t.TempDir(), "plumb.db"), "--http-addr", "127.0.0.1:0")
	base := s.httpBase(t)
	responses := states(t, s, base)

	ctx := browserContext(t, browser)

	// The demo page: the example request scored through HTTP by the page itself.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`body[data-scored="ok"]`))); err != nil {
		t.Fatalf("demo page: %v", err)
	}
	demo, err := chromedp.Run(ctx, chromedp.Evaluate[[2]string](`(() => {
		const b = document.getElementById("badge");
		return [b.shadowRoot.querySelector(".label").textContent, b.dataset.state];
	})()`))
	if err != nil {
		t.Fatalf("demo page: %v", err)
	}
	demoLabel, demoState := demo[0], demo[1]
	want := responses["uncalibrated"].GetBadge().GetLabel()
	if demoLabel != want || demoState != "uncalibrated" {
		t.Fatalf("demo page badge %q (%s), want %q (uncalibrated)", demoLabel, demoState, want)
	}

	dir := t.ArtifactDir()
	looks := map[string]string{} // state → its light-scheme colours, to tell states apart
	for _, scheme := range []string{"light", "dark"} {
		if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
			t.Fatal(err)
		}
		for _, state := range []string{"high", "medium", "clarify", "abstain", "uncalibrated", "sycophancy"} {
			t.Run(scheme+"/"+state, func(t *testing.T) {
				resp := responses[state]
				js, err := protojson.Marshal(resp)
				if err != nil {
					t.Fatal(err)
				}
				// A fresh badge after a button, so that one Tab from the button reaches it.
				setup := fmt.Sprintf(`(() => {
					document.getElementById("stage")?.remove();
					const stage = document.createElement("div");
					stage.id = "stage";
					stage.style = "padding: 12px; height: 340px";
					stage.innerHTML = '<button id="before">before</button> <plumb-badge id="under-test"></plumb-badge>';
					document.body.prepend(stage);
					document.getElementById("under-test").response = %s;
					document.getElementById("before").focus();
					return true;
				})()`, js)
				type rendered struct {
					Label, Aria, Role, State, Color, Background, Border, Panel, Focused string
					Reasons                                                             []string
					Note                                                                string
				}
				if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](setup), chromedp.KeyEvent(kb.Tab), chromedp.Sleep(100*time.Millisecond)); err != nil {
					t.Fatal(err)
				}
				got, err := chromedp.Run(ctx, chromedp.Evaluate[rendered](`(() => {
						const host = document.getElementById("under-test");
						const b = host.shadowRoot.querySelector(".badge");
						const panel = host.shadowRoot.querySelector(".panel");
						const cs = getComputedStyle(b);
						return {
							Label: b.querySelector(".label").textContent,
							Aria: b.getAttribute("aria-label"),
							Role: b.getAttribute("role"),
							State: host.dataset.state,
							Color: cs.color, Background: cs.backgroundColor, Border: cs.borderTopStyle,
							Panel: getComputedStyle(panel).display + " | " + panel.textContent,
							Focused: document.activeElement === host && host.shadowRoot.activeElement === b ? "yes" : "no",
							Reasons: [...panel.querySelectorAll(".reasons li")].map(li => li.textContent),
							Note: panel.querySelector(".sycophancy")?.textContent ?? "",
						};
					})()`))
				if err != nil {
					t.Fatal(err)
				}
				shot, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("#stage")))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, scheme+"-"+state+".png"), shot, 0o644); err != nil {
					t.Fatal(err)
				}
				// The aria-label reads the label's percentage (calibrate's badgePercent) in words:
				// the page's rounding must agree with the server's.
				pct := spokenPercent(strings.TrimSpace(strings.Split(resp.GetBadge().GetLabel(), "·")[0]))
				action := strings.ToLower(strings.TrimPrefix(resp.GetAction().String(), "ACTION_"))
				if got.Label != resp.GetBadge().GetLabel() || got.Role != "status" {
					t.Errorf("label %q role %q, want %q and status", got.Label, got.Role, resp.GetBadge().GetLabel())
				}
				if !strings.Contains(got.Aria, "Confidence "+pct+",") || !strings.Contains(got.Aria, "Action: "+action) {
					t.Errorf("aria-label %q does not read %s and %s", got.Aria, pct, action)
				}
				wantState := state
				if state == "sycophancy" {
					wantState = map[plumbv1.BadgeLevel]string{plumbv1.BadgeLevel_BADGE_LEVEL_HIGH: "high"}[resp.GetBadge().GetLevel()]
					if wantState == "" {
						wantState = "medium"
					}
				}
				if got.State != wantState {
					t.Errorf("state %q, want %q", got.State, wantState)
				}
				if r := contrast(rgb(t, got.Color), rgb(t, got.Background)); r < 4.5 {
					t.Errorf("%s on %s: contrast %.2f, below WCAG AA's 4.5", got.Color, got.Background, r)
				}
				if got.Focused != "yes" || !strings.HasPrefix(got.Panel, "block | ") {
					t.Errorf("after Tab: focused %s, panel %q; want the badge focused and its panel shown", got.Focused, got.Panel)
				}
				if !strings.Contains(got.Panel, resp.GetAnswer()) {
					t.Errorf("the panel does not name the answer %q: %q", resp.GetAnswer(), got.Panel)
				}
				if len(got.Reasons) != len(resp.GetReasons()) {
					t.Errorf("reasons %q for %v", got.Reasons, resp.GetReasons())
				}
				for _, r := range got.Reasons {
					if strings.Contains(r, "REASON_") {
						t.Errorf("a reason not in plain words: %q", r)
					}
				}
				if (got.Note != "") != resp.GetSycophancy().GetFlagged() {
					t.Errorf("sycophancy note %q, flagged %v", got.Note, resp.GetSycophancy().GetFlagged())
				}
				if scheme == "light" {
					looks[state] = got.Background + got.Border
				}
			})
		}
	}
	for _, pair := range [][2]string{{"high", "uncalibrated"}, {"high", "abstain"}, {"high", "clarify"}, {"medium", "abstain"}, {"clarify", "abstain"}} {
		if looks[pair[0]] == looks[pair[1]] {
			t.Errorf("%s and %s look the same (%s)", pair[0], pair[1], looks[pair[0]])
		}
	}

	// What is not a ScoreResponse says so instead of drawing a badge; a confidence that is
	// almost 1 never reads 100 percent.
	for _, tc := range []struct{ name, response, text, aria string }{
		{"empty", `{}`, "Not scored: this is not a plumb ScoreResponse", ""},
		{"a string", `"ACTION_ANSWER"`, "Not scored: this is not a plumb ScoreResponse", ""},
		{"an inherited action", `{"action": "toString", "confidence": 0.5}`, "Not scored: this is not a plumb ScoreResponse", ""},
		{"a confidence of 2", `{"action": "ACTION_ANSWER", "confidence": 2}`, "Not scored: this is not a plumb ScoreResponse", ""},
		{"a confidence that is text", `{"action": "ACTION_ANSWER", "confidence": "high"}`, "Not scored: this is not a plumb ScoreResponse", ""},
		{"almost certain, without a label", `{"action": "ACTION_ANSWER", "confidence": 0.996}`, "> 99%", "Confidence more than 99 percent"},
	} {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[3]string](fmt.Sprintf(`(() => {
			document.getElementById("stage")?.remove();
			const b = document.createElement("plumb-badge");
			b.id = "stage";
			document.body.prepend(b);
			b.response = %s;
			const pill = b.shadowRoot.querySelector(".badge");
			return [b.shadowRoot.textContent.includes("Not scored") ? b.shadowRoot.querySelector("span").textContent : pill.querySelector(".label").textContent,
				pill?.getAttribute("aria-label") ?? "", b.dataset.state ?? ""];
		})()`, tc.response)))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got[0] != tc.text || !strings.HasPrefix(got[1], tc.aria) || (tc.aria == "") != (got[2] == "error") {
			t.Errorf("%s: shows %q, aria-label %q, state %q; want %q, %q", tc.name, got[0], got[1], got[2], tc.text, tc.aria)
		}
	}
}

// spokenPercent is a badge's percentage ("85%", "> 99%") as its aria-label reads it.
func spokenPercent(label string) string {
	return strings.NewReplacer(">", "more than", "<", "less than", "%", " percent").Replace(label)
}

// mixedAnswer fits a claims profile over gRPC on simulated long answers with a judge's support,
// and returns a held-out answer, scored over HTTP, whose claims are kept, flagged and dropped,
// with a claim that is markup.
func mixedAnswer(t *testing.T, s *served, base string) (*plumbv1.ScoreRequest, *plumbv1.ScoreResponse) {
	t.Helper()
	exs, _ := simulate.Generate(&simulate.Config{Questions: 900, Seed: 21, Claims: 8, Wordings: 3, Judge: true})
	var fit []*plumbv1.LabeledExample
	for i := range exs[:600] {
		fit = append(fit, api.Labeled(&exs[i]))
	}
	c := dial(t, s.addr, nil)
	if _, err := c.Fit(context.Background(), &plumbv1.FitConfig{Name: "answers", Alpha: 0.2}, seqOf(fit)); err != nil {
		t.Fatal(err)
	}
	for i := range exs[600:] {
		req := api.Request(&exs[600+i].Question)
		req.Profile = "answers"
		req.Claims[1].Text = `<img src=x onerror="window.pwned = 1"> is a claim too.`
		b, _ := protojson.Marshal(req)
		resp, err := http.Post(base+"/plumb.v1.ConfidenceService/Score", "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		var raw json.RawMessage
		json.NewDecoder(resp.Body).Decode(&raw)
		resp.Body.Close()
		var out plumbv1.ScoreResponse
		if err := protojson.Unmarshal(raw, &out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d: %v %s", resp.StatusCode, err, raw)
		}
		seen := map[plumbv1.ClaimAction]bool{}
		for _, cs := range out.GetClaims() {
			seen[cs.GetAction()] = true
		}
		if len(seen) == 3 {
			return req, &out
		}
	}
	t.Fatal("no held-out answer has kept, flagged and dropped claims")
	return nil, nil
}

// TestAnswerInChromium: <plumb-answer> renders a long answer scored over HTTP under a fitted
// claims profile, in the light and the dark scheme: a span per claim marked by its action
// (kept plain, flagged underlined, dropped struck through), text of AA contrast, a claim that is
// markup rendered as text (no element made, no script run), the summary "N of M claims
// verified", a panel with the confidence and the reasons when a claim is reached with the Tab
// key, and the dropped claims collapsed by the summary's button. Screenshots are test artefacts.
func TestAnswerInChromium(t *testing.T) {
	browser := chromium(t)
	s := serveArgs(t, "--store", filepath.Join(t.TempDir(), "plumb.db"), "--http-addr", "127.0.0.1:0")
	base := s.httpBase(t)
	req, resp := mixedAnswer(t, s, base)
	ctx := browserContext(t, browser)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`body[data-scored="ok"]`))); err != nil {
		t.Fatalf("demo page: %v", err)
	}
	claimsJS, _ := json.Marshal(func() []map[string]string {
		var out []map[string]string
		for _, c := range req.GetClaims() {
			out = append(out, map[string]string{"id": c.GetId(), "text": c.GetText()})
		}
		return out
	}())
	respJS, _ := protojson.Marshal(resp)
	kept := 0
	for _, cs := range resp.GetClaims() {
		if cs.GetAction() == plumbv1.ClaimAction_CLAIM_ACTION_KEEP {
			kept++
		}
	}
	for _, scheme := range []string{"light", "dark"} {
		t.Run(scheme, func(t *testing.T) {
			if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
				t.Fatal(err)
			}
			setup := fmt.Sprintf(`(async () => {
				await customElements.whenDefined("plumb-answer");
				document.getElementById("stage")?.remove();
				const stage = document.createElement("div");
				stage.id = "stage";
				stage.style = "padding: 12px; height: 360px; max-width: 44rem";
				stage.innerHTML = '<button id="before">before</button><plumb-answer id="under-test"></plumb-answer>';
				document.body.prepend(stage);
				const a = document.getElementById("under-test");
				a.claims = %s;
				a.response = %s;
				document.getElementById("before").focus();
				return true;
			})()`, claimsJS, respJS)
			// Two Tabs: the summary's button (the answer has dropped claims), then the first claim.
			if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](setup, chromedp.EvalAwaitPromise),
				chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Tab), chromedp.Sleep(100*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			type claim struct{ Action, Text, Decoration, Color string }
			type rendered struct {
				Claims                    []claim
				Background, Summary, Role string
				Images                    int
				Pwned                     bool
				Focused, Panel            string
			}
			got, err := chromedp.Run(ctx, chromedp.Evaluate[rendered](`(() => {
				const host = document.getElementById("under-test");
				const root = host.shadowRoot;
				const spans = [...root.querySelectorAll(".claim")];
				const focused = root.activeElement;
				return {
					Claims: spans.map(s => ({Action: s.dataset.action, Text: s.firstChild.textContent,
						Decoration: getComputedStyle(s).textDecorationLine, Color: getComputedStyle(s).color})),
					Background: getComputedStyle(host).backgroundColor,
					Summary: root.querySelector(".summary .count").textContent,
					Role: root.querySelector(".summary").getAttribute("role"),
					Images: root.querySelectorAll("img").length + document.querySelectorAll("#stage img").length,
					Pwned: window.pwned === 1,
					Focused: focused?.dataset.action ?? "",
					Panel: focused?.querySelector(".panel") ? getComputedStyle(focused.querySelector(".panel")).display + " | " + focused.querySelector(".panel").textContent : "",
				};
			})()`))
			if err != nil {
				t.Fatal(err)
			}
			shot, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("#stage")))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(t.ArtifactDir(), "answer-"+scheme+".png"), shot, 0o644); err != nil {
				t.Fatal(err)
			}
			if len(got.Claims) != len(req.GetClaims()) {
				t.Fatalf("%d claims rendered, want %d", len(got.Claims), len(req.GetClaims()))
			}
			want := map[plumbv1.ClaimAction]string{plumbv1.ClaimAction_CLAIM_ACTION_KEEP: "keep", plumbv1.ClaimAction_CLAIM_ACTION_FLAG: "flag",
				plumbv1.ClaimAction_CLAIM_ACTION_DROP: "drop"}
			decoration := map[string]string{"keep": "none", "flag": "underline", "drop": "line-through"}
			for j, c := range got.Claims {
				action := want[resp.GetClaims()[j].GetAction()]
				if c.Action != action || c.Text != req.GetClaims()[j].GetText() || c.Decoration != decoration[action] {
					t.Errorf("claim %d: %+v, want %s (%s) reading %q", j, c, action, decoration[action], req.GetClaims()[j].GetText())
				}
				if r := contrast(rgb(t, c.Color), rgb(t, got.Background)); r < 4.5 {
					t.Errorf("claim %d (%s): %s on %s, contrast %.2f below 4.5", j, action, c.Color, got.Background, r)
				}
			}
			if got.Images != 0 || got.Pwned {
				t.Errorf("a claim of markup made %d images (script ran: %v)", got.Images, got.Pwned)
			}
			if wantSummary := fmt.Sprintf("%d of %d claims verified", kept, len(req.GetClaims())); got.Summary != wantSummary || got.Role != "status" {
				t.Errorf("summary %q (%s), want %q", got.Summary, got.Role, wantSummary)
			}
			if got.Focused == "" || !strings.HasPrefix(got.Panel, "block | ") || !strings.Contains(got.Panel, "likely true") {
				t.Errorf("after Tab: focused %q, panel %q; want the first claim focused and its panel shown", got.Focused, got.Panel)
			}
			hidden, err := chromedp.Run(ctx, chromedp.Evaluate[[2]string](`(() => {
				const root = document.getElementById("under-test").shadowRoot;
				const button = root.querySelector(".summary button");
				button.click();
				return [getComputedStyle(root.querySelector(".drop")).display, button.getAttribute("aria-expanded")];
			})()`))
			if err != nil || hidden[0] != "none" || hidden[1] != "false" {
				t.Errorf("the dropped claims after the button: display %q, aria-expanded %q (%v)", hidden[0], hidden[1], err)
			}
		})
	}
}
