package plumbv1

import _ "embed"

// OpenAPI is the OpenAPI 3.1 description of the HTTP (Connect) API, generated from plumb.proto
// by internal/protoc-gen-openapi (buf generate); the server serves it at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
