// Package layering holds the test that keeps DESIGN.md's import rules true:
// proto is the ground floor; aoe, perfc and statsd never import node or
// controller; node never imports controller; and no command links the
// testing package.
package layering
