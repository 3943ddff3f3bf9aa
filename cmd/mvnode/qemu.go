package main

import (
	"errors"

	"github.com/mvstack/mvstack/node/agent"
	"github.com/mvstack/mvstack/node/domain"
)

// newQEMUDriver builds the qemu driver.
func newQEMUDriver(d agent.DriverDeps) (domain.Driver, error) {
	return nil, errors.New("the qemu driver (node/domain/qemu) is not in this build yet")
}
