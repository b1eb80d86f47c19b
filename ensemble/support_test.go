package ensemble

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/plumbhq/plumb/internal/datasets"
)

// TestWords: content words are the runs of letters and digits of the NFKC text, lower case,
// without function words; a text of function words alone keeps them.
func TestWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"He was born in Dublin, the son of a barrister.", []string{"born", "dublin", "son", "barrister"}},
		{"(1708–1794) was an Irish soldier", []string{"1708", "1794", "irish", "soldier"}},
		{"Ｆｕｌｌｗｉｄｔｈ Café", []string{"fullwidth", "café"}},
		{"It was.", []string{"it", "was"}},
		{"…", nil},
	} {
		if got := Words(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Words(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestLexiconHand: three samples; the claim "born in Dublin in 1708" has content words born,
// dublin, 1708 with document frequencies 2, 1, 0 among the 3 samples, so weights
// log(4/2.5), log(4/1.5), log(4/0.5). Sample 0 holds born and dublin: (w_born + w_dublin)/Σw;
// sample 1 holds born only; sample 2 none.
func TestLexiconHand(t *testing.T) {
	samples := []string{"She was born in Dublin.", "He was born in Cork in 1710.", "A poet of note."}
	x, err := NewLexicon(context.Background(), samples, 3)
	if err != nil {
		t.Fatal(err)
	}
	got := x.Support(make([]float64, 3), "Born in Dublin in 1708.")
	wb, wd, wy := math.Log(4/2.5), math.Log(4/1.5), math.Log(4/0.5)
	want := []float64{(wb + wd) / (wb + wd + wy), wb / (wb + wd + wy), 0}
	for m := range want {
		if math.Abs(got[m]-want[m]) > 1e-15 {
			t.Errorf("sample %d: %v, want %v", m, got[m], want[m])
		}
	}
	// Only the reference samples weigh the words: with sample 2 not a reference, df counts
	// the first two.
	y, _ := NewLexicon(context.Background(), []string{samples[0], samples[1], "born in Dublin in 1708"}, 2)
	got = y.Support(make([]float64, 3), "Born in Dublin in 1708.")
	wb, wd, wy = math.Log(3/2.5), math.Log(3/1.5), math.Log(3/0.5)
	if want := 1.0; math.Abs(got[2]-want) > 1e-15 || math.Abs(got[0]-(wb+wd)/(wb+wd+wy)) > 1e-15 {
		t.Errorf("with two reference samples: %v", got)
	}
}

// TestLexiconReference: plumb's lexical support of the first claims of the first WikiBio
// passage by its first samples equals testdata/wikibio/reference.py's, an independent
// implementation in Python (to 1e-12):
//
//	cd testdata/wikibio && /usr/bin/python3 reference.py
func TestLexiconReference(t *testing.T) {
	p := datasets.WikiBio(t)[0]
	want := [][]float64{
		{0.5542857716816167, 0.1516871861924544, 0.010180699108805483, 0.010180699108805483, 0.010180699108805483},
		{0.14771070841326095, 0.03467001161270669, 0.06934002322541338, 0.0, 0.21103323998143822},
		{0.11198827240759301, 0.0394601586410562, 0.07246955824515751, 0.006861649618593439, 0.1495114999108091},
	}
	x, err := NewLexicon(context.Background(), p.Samples, len(p.Samples))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float64, len(p.Samples))
	for j, w := range want {
		x.Support(got, p.Claims[j])
		for m, v := range w {
			if math.Abs(got[m]-v) > 1e-12 {
				t.Errorf("claim %d, sample %d: %v, want %v", j, m, got[m], v)
			}
		}
	}
}
