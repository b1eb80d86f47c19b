package jsonl

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// openAILine is one question in the --from openai format: its wordings, each with the raw
// chat-completions response the caller's LLM client saved. Every choice of a response is one
// sampled completion: its text is choices[i].message.content and its tokens are
// choices[i].logprobs.content. A label makes it a labelled example (fit, eval).
type openAILine struct {
	ID       string          `json:"id"`
	Group    string          `json:"group"`
	Profile  string          `json:"profile"`
	Wordings []openAIWording `json:"wordings"`
	Label    *struct {
		Answers []string `json:"answers"`
	} `json:"label"`
}

type openAIWording struct {
	Prompt   string          `json:"prompt"`
	Framing  string          `json:"framing"` // "", "FRAMING_NEUTRAL" or "FRAMING_USER_STANCE"
	Stance   string          `json:"stance"`
	Response *openAIResponse `json:"response"`
}

// openAIResponse is the part of a chat-completions response plumb reads.
type openAIResponse struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
		Logprobs *struct {
			Content []struct {
				Token       string  `json:"token"`
				Logprob     float64 `json:"logprob"`
				Bytes       []int32 `json:"bytes"`
				TopLogprobs []struct {
					Token   string  `json:"token"`
					Logprob float64 `json:"logprob"`
					Bytes   []int32 `json:"bytes"`
				} `json:"top_logprobs"`
			} `json:"content"`
		} `json:"logprobs"`
	} `json:"choices"`
}

// fromOpenAI converts one line of the --from openai format into a ScoreRequest and, when the
// line has a label, a LabeledExample around it.
func fromOpenAI(b []byte) (*plumbv1.ScoreRequest, *plumbv1.LabeledExample, error) {
	var l openAILine
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, nil, err
	}
	if len(l.Wordings) == 0 {
		return nil, nil, errors.New("wordings: at least one wording with its response is required")
	}
	r := &plumbv1.ScoreRequest{Id: l.ID, Group: l.Group, Profile: l.Profile}
	for i, w := range l.Wordings {
		p := &plumbv1.Paraphrase{Prompt: w.Prompt, Stance: w.Stance}
		switch w.Framing {
		case "", "FRAMING_UNSPECIFIED", "FRAMING_NEUTRAL":
		case "FRAMING_USER_STANCE":
			p.Framing = plumbv1.Framing_FRAMING_USER_STANCE
		default:
			return nil, nil, fmt.Errorf("wordings[%d].framing: %q is not FRAMING_NEUTRAL or FRAMING_USER_STANCE", i, w.Framing)
		}
		if w.Response == nil || len(w.Response.Choices) == 0 {
			return nil, nil, fmt.Errorf("wordings[%d].response: no choices", i)
		}
		for c, ch := range w.Response.Choices {
			if ch.Message.Content == nil {
				return nil, nil, fmt.Errorf("wordings[%d].response.choices[%d].message.content: missing", i, c)
			}
			s := &plumbv1.Sample{Text: strings.TrimSpace(*ch.Message.Content)}
			if ch.Logprobs != nil {
				for _, t := range ch.Logprobs.Content {
					tok := &plumbv1.Token{Token: t.Token, Logprob: t.Logprob, Bytes: t.Bytes}
					for _, tl := range t.TopLogprobs {
						tok.TopLogprobs = append(tok.TopLogprobs, &plumbv1.TopLogprob{Token: tl.Token, Logprob: tl.Logprob, Bytes: tl.Bytes})
					}
					s.Tokens = append(s.Tokens, tok)
				}
			}
			p.Samples = append(p.Samples, s)
		}
		r.Paraphrases = append(r.Paraphrases, p)
	}
	var ex *plumbv1.LabeledExample
	if l.Label != nil {
		ex = &plumbv1.LabeledExample{Request: r, Label: &plumbv1.Label{Answers: l.Label.Answers}}
	}
	return r, ex, nil
}

// openAIRequest decodes an OpenAI-format line into a ScoreRequest.
func openAIRequest(b []byte, m *plumbv1.ScoreRequest) error {
	r, _, err := fromOpenAI(b)
	if err != nil {
		return err
	}
	proto.Merge(m, r)
	return nil
}

// openAIExample decodes an OpenAI-format line, which must have a label, into a LabeledExample.
func openAIExample(b []byte, m *plumbv1.LabeledExample) error {
	_, ex, err := fromOpenAI(b)
	if err != nil {
		return err
	}
	if ex == nil {
		return errors.New("label: a labelled example needs \"label\": {\"answers\": [...]}")
	}
	proto.Merge(m, ex)
	return nil
}
