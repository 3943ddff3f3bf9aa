// Package rest is the controller's REST API: a plain http.Handler built from
// its dependencies (a [Store], optionally [Membership] and a Prometheus
// registry), routed with net/http's method and wildcard patterns.
//
// The API is described by api/openapi.yaml, served at /api/openapi.yaml;
// the tests validate every request and response against it.
//
// # Errors
//
// Errors are JSON bodies {"error": {"code", "message", "field"}} where field
// names the request field or query parameter at fault: 400 for malformed
// JSON, unknown fields and wrong types, 422 for well-formed but invalid
// values, 401 without a valid bearer token, 404 for unknown objects, 503 with
// Retry-After when no leader with a quorum can take a write.
//
// # Writes and forwarding
//
// Writes (POST, PUT, DELETE) on a follower are forwarded over HTTP to the
// leader's API address (with the caller's token), and the leader's answer is
// relayed; clients never see a redirect. Each write is one raft command, so
// it is applied wholly or not at all.
//
// # Tokens
//
// A token reads "mvs_<id>_<secret>"; the state keeps only the SHA-256 of
// the secret, compared in constant time.
package rest
