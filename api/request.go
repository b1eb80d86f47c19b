package api

import (
	"strconv"

	"github.com/plumbhq/plumb/calibrate"
	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// Question converts a ScoreRequest to the engine's Question. The error names a field holding an
// enum value the API does not define; everything else is the engine's to validate.
func Question(r *plumbv1.ScoreRequest) (calibrate.Question, error) {
	q := calibrate.Question{
		ID:             r.GetId(),
		Profile:        r.GetProfile(),
		ProfileVersion: r.GetProfileVersion(),
		Group:          r.GetGroup(),
		Segment:        r.GetSegment(),
		Policy:         calibrate.Policy{Risk: r.GetPolicy().GetRisk()},
	}
	var err error
	if q.Kind, err = queryKinds.read("kind", r.GetKind()); err != nil {
		return q, err
	}
	if q.Policy.Equivalence, err = equivalences.read("policy.equivalence", r.GetPolicy().GetEquivalence()); err != nil {
		return q, err
	}
	if cs := r.GetClaims(); len(cs) > 0 {
		q.Claims = make([]calibrate.Claim, len(cs))
		for j, c := range cs {
			q.Claims[j] = calibrate.Claim{ID: c.GetId(), Text: c.GetText(), Embedding: c.GetEmbedding()}
		}
	}
	q.Paraphrases = make([]calibrate.Paraphrase, len(r.GetParaphrases()))
	for i, p := range r.GetParaphrases() {
		qp := &q.Paraphrases[i]
		qp.Prompt, qp.Stance = p.GetPrompt(), p.GetStance()
		if qp.Framing, err = framings.read(paraField(i)+".framing", p.GetFraming()); err != nil {
			return q, err
		}
		if opts := p.GetOptions(); len(opts) > 0 {
			qp.Options = make([]calibrate.Option, len(opts))
			for j, o := range opts {
				qp.Options[j] = calibrate.Option{Label: o.GetLabel(), Logprob: o.GetLogprob()}
			}
		}
		if ss := p.GetSamples(); len(ss) > 0 {
			qp.Samples = make([]calibrate.Sample, len(ss))
			for j, s := range ss {
				sampleFrom(&qp.Samples[j], s)
			}
		}
	}
	return q, nil
}

func sampleFrom(cs *calibrate.Sample, s *plumbv1.Sample) {
	cs.Text, cs.Embedding, cs.Cluster, cs.Support = s.GetText(), s.GetEmbedding(), s.GetCluster(), s.GetSupport()
	if vs := s.GetSentences(); len(vs) > 0 {
		cs.Sentences = make([][]float32, len(vs))
		for k, v := range vs {
			cs.Sentences[k] = v.GetValues()
		}
	}
	toks := s.GetTokens()
	if len(toks) == 0 {
		return
	}
	cs.Tokens = make([]calibrate.Token, len(toks))
	for t, tok := range toks {
		ct := &cs.Tokens[t]
		ct.Token, ct.Logprob = tok.GetToken(), tok.GetLogprob()
		if tops := tok.GetTopLogprobs(); len(tops) > 0 {
			ct.TopLogprobs = make([]calibrate.TopLogprob, len(tops))
			for a, tl := range tops {
				ct.TopLogprobs[a] = calibrate.TopLogprob{Token: tl.GetToken(), Logprob: tl.GetLogprob()}
			}
		}
	}
}

// Example converts a LabeledExample; errors name fields under "request." as Question's do.
func Example(e *plumbv1.LabeledExample) (calibrate.Example, error) {
	q, err := Question(e.GetRequest())
	if err != nil {
		return calibrate.Example{}, within("request.", err)
	}
	l := calibrate.Label{Answers: e.GetLabel().GetAnswers()}
	if l.Claims, err = Verdicts(e.GetLabel().GetClaims()); err != nil {
		return calibrate.Example{}, err
	}
	return calibrate.Example{Question: q, Label: l}, nil
}

// Verdicts converts a label's claim verdicts (nil for none); an unknown one is InvalidInput
// naming "label.claims[j]".
func Verdicts(vs []plumbv1.ClaimVerdict) ([]calibrate.ClaimVerdict, error) {
	if len(vs) == 0 {
		return nil, nil
	}
	out := make([]calibrate.ClaimVerdict, len(vs))
	for j, v := range vs {
		var err error
		if out[j], err = claimVerdicts.read("label.claims["+strconv.Itoa(j)+"]", v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Request converts an engine Question back to a ScoreRequest: a question the CLI decoded, on
// its way to a server, or the simulator's output.
func Request(q *calibrate.Question) *plumbv1.ScoreRequest {
	r := &plumbv1.ScoreRequest{Id: q.ID, Profile: q.Profile, ProfileVersion: q.ProfileVersion, Group: q.Group,
		Segment: q.Segment, Kind: queryKinds.toAPI(q.Kind)}
	if q.Policy != (calibrate.Policy{}) {
		r.Policy = &plumbv1.Policy{Risk: q.Policy.Risk, Equivalence: equivalences.toAPI(q.Policy.Equivalence)}
	}
	for _, c := range q.Claims {
		r.Claims = append(r.Claims, &plumbv1.Claim{Id: c.ID, Text: c.Text, Embedding: c.Embedding})
	}
	for _, p := range q.Paraphrases {
		pp := &plumbv1.Paraphrase{Prompt: p.Prompt, Stance: p.Stance, Framing: framings.toAPI(p.Framing)}
		for _, o := range p.Options {
			pp.Options = append(pp.Options, &plumbv1.Option{Label: o.Label, Logprob: o.Logprob})
		}
		for _, s := range p.Samples {
			ps := &plumbv1.Sample{Text: s.Text, Embedding: s.Embedding, Cluster: s.Cluster, Support: s.Support}
			for _, e := range s.Sentences {
				ps.Sentences = append(ps.Sentences, &plumbv1.Vector{Values: e})
			}
			for _, t := range s.Tokens {
				pt := &plumbv1.Token{Token: t.Token, Logprob: t.Logprob}
				for _, tl := range t.TopLogprobs {
					pt.TopLogprobs = append(pt.TopLogprobs, &plumbv1.TopLogprob{Token: tl.Token, Logprob: tl.Logprob})
				}
				ps.Tokens = append(ps.Tokens, pt)
			}
			pp.Samples = append(pp.Samples, ps)
		}
		r.Paraphrases = append(r.Paraphrases, pp)
	}
	return r
}

// Labeled converts an engine Example back to a LabeledExample.
func Labeled(e *calibrate.Example) *plumbv1.LabeledExample {
	l := &plumbv1.Label{Answers: e.Label.Answers}
	for _, v := range e.Label.Claims {
		l.Claims = append(l.Claims, claimVerdicts.toAPI(v))
	}
	return &plumbv1.LabeledExample{Request: Request(&e.Question), Label: l}
}

// paraField is "paraphrases[i]".
func paraField(i int) string { return "paraphrases[" + strconv.Itoa(i) + "]" }
