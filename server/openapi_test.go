package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/reflect/protoreflect"

	plumbv1 "github.com/plumbhq/plumb/proto/plumb/v1"
)

// TestOpenAPI: /openapi.yaml is a valid OpenAPI document (kin-openapi's loader and validator),
// it has a path for every method of both services, and the real bodies of the README's request,
// its response and an error validate against its schemas.
func TestOpenAPI(t *testing.T) {
	h := start(t, Config{}, nil)
	resp, err := http.Get(h.http + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /openapi.yaml: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml does not validate: %v", err)
	}

	services := plumbv1.File_plumb_v1_plumb_proto.Services()
	for i := 0; i < services.Len(); i++ {
		methods := services.Get(i).Methods()
		for j := 0; j < methods.Len(); j++ {
			m := methods.Get(j)
			path := "/" + string(services.Get(i).FullName()) + "/" + string(m.Name())
			if doc.Paths.Find(path) == nil || doc.Paths.Find(path).Post == nil {
				t.Errorf("no POST %s in openapi.yaml", path)
			}
		}
	}

	validate := func(schema protoreflect.FullName, raw []byte) {
		t.Helper()
		ref := doc.Components.Schemas[string(schema)]
		if ref == nil {
			t.Fatalf("no schema %s", schema)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		if err := ref.Value.VisitJSON(v); err != nil {
			t.Errorf("%s does not validate against its schema: %v\n%s", schema, err, raw)
		}
	}
	example, err := os.ReadFile("../testdata/score-request.json")
	if err != nil {
		t.Fatal(err)
	}
	validate("plumb.v1.ScoreRequest", example)
	code, b := post(t, h.http+"/plumb.v1.ConfidenceService/Score", string(example))
	if code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", code, b)
	}
	validate("plumb.v1.ScoreResponse", b)
	// Every field of every message the API reaches has its property.
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] || md.FullName() == "google.protobuf.Timestamp" {
			return
		}
		seen[md.FullName()] = true
		ref := doc.Components.Schemas[string(md.FullName())]
		if ref == nil {
			t.Errorf("no schema %s", md.FullName())
			return
		}
		for i := 0; i < md.Fields().Len(); i++ {
			f := md.Fields().Get(i)
			if ref.Value.Properties[f.JSONName()] == nil {
				t.Errorf("schema %s lacks %s", md.FullName(), f.JSONName())
			}
			if f.Message() != nil && !f.IsMap() {
				walk(f.Message())
			}
		}
	}
	for i := 0; i < services.Len(); i++ {
		for j := 0; j < services.Get(i).Methods().Len(); j++ {
			walk(services.Get(i).Methods().Get(j).Input())
			walk(services.Get(i).Methods().Get(j).Output())
		}
	}
	if !seen["plumb.v1.ClaimScore"] || !seen["plumb.v1.Profile"] {
		t.Errorf("walked %d messages", len(seen))
	}
	code, b = post(t, h.http+"/plumb.v1.ConfidenceService/Score", `{"paraphrases":[{"options":[{"label":"A","logprob":-1}]}]}`)
	if code != http.StatusBadRequest {
		t.Fatalf("a bad request: HTTP %d", code)
	}
	validate("connect.Error", b)

	// A schema that contradicts the data fails: the test can fail.
	if err := doc.Components.Schemas["plumb.v1.ScoreResponse"].Value.VisitJSON(map[string]any{"confidence": map[string]any{}}); err == nil {
		t.Error("an object where a number belongs validated")
	}
}
