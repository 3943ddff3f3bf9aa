package agent

import (
	"context"
	"path/filepath"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/domain/qemu"
)

// newQEMU builds the qemu driver from the config.
func newQEMU(d DriverDeps) (domain.Driver, error) {
	qc := qemu.DefaultConfig()
	qc.Ledger, qc.Notify, qc.Logger, qc.ConsoleSize = d.Ledger, d.Notify, d.Logger, d.Config.ConsoleSize
	c := d.Config.QEMU
	if c.Binary != "" {
		qc.Binary = c.Binary
	}
	if c.Accel != "" {
		qc.Accel = c.Accel
	}
	qc.RunDir = guestDir(d.Config, d.Inventory.NodeID)
	return qemu.New(context.Background(), qc)
}

// guestDir is where the qemu driver keeps its guests' sockets and logs.
func guestDir(cfg Config, nodeID string) string {
	switch {
	case cfg.QEMU.RunDir != "":
		return filepath.Clean(cfg.QEMU.RunDir)
	case cfg.StateDir != "":
		return filepath.Join(cfg.StateDir, "qemu")
	}
	return filepath.Join("/run/mvnode", nodeID)
}
