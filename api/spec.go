// Package api holds the OpenAPI 3 document of the controller's REST API
// (openapi.yaml), embedded so the controller serves it at /api/openapi.yaml
// and tests validate every request and response against it.
package api

import _ "embed"

//go:embed openapi.yaml
var spec []byte

// OpenAPI returns the OpenAPI document (YAML). The caller must not modify it.
func OpenAPI() []byte { return spec }
