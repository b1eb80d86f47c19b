// Package web holds what plumb serves to browsers, embedded in the binary: the <plumb-badge>
// web component (badge.js) and the <plumb-answer> one for long answers (answer.js), both plain
// JavaScript with no dependencies and no build step, a demo page that scores an example request
// through the HTTP endpoint and renders it, and that request.
package web

import (
	"embed"
	"net/http"
)

//go:embed badge.js answer.js index.html example-request.json example-claims.json
var files embed.FS

// serve serves one embedded file with a content type and a short cache lifetime.
func serve(name, contentType string) http.Handler {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded: cannot happen
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Write(b)
	})
}

// Badge serves badge.js.
func Badge() http.Handler { return serve("badge.js", "text/javascript; charset=utf-8") }

// Answer serves answer.js.
func Answer() http.Handler { return serve("answer.js", "text/javascript; charset=utf-8") }

// Demo serves the demo page.
func Demo() http.Handler { return serve("index.html", "text/html; charset=utf-8") }

// ExampleClaims serves the demo's example long answer.
func ExampleClaims() http.Handler { return serve("example-claims.json", "application/json") }

// ExampleRequest serves the demo's example request.
func ExampleRequest() http.Handler { return serve("example-request.json", "application/json") }
