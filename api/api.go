// Package api is the one edge between plumb's API (the plumb.v1 messages of
// proto/plumb/v1) and its engine (package calibrate): every conversion between the two, each
// returning the error of a value the API does not define with the field it is in; the tables of
// every enum, checked against the generated code by a test; the decoding of a message from the
// bytes a transport received (Decode), whose caps bind while it reads; and the classification
// of every error into the API's status codes (FaultOf), which each transport renders once.
//
// It imports the generated code, the engine and the engine's own leaves (temperature,
// conformal), and nothing of the service, the store or a transport: the JSON Lines pipeline,
// the service, the server and the CLI all convert through it.
package api
