package state

import (
	"errors"
	"fmt"
)

// AdminState is the mode an operator sets.
type AdminState string

// Admin states.
const (
	AdminEnabled  AdminState = "enabled"
	AdminDisabled AdminState = "disabled"
	AdminOffline  AdminState = "offline"
	// AdminFlush moves everything away; the node becomes disabled once
	// nothing is allocated on it.
	AdminFlush AdminState = "flush"
)

// Health is the outcome of liveness monitoring.
type Health string

// Health values.
const (
	HealthOK    Health = "ok"
	HealthError Health = "error" // heartbeats stopped and probes failed
	HealthRetry Health = "retry" // heard from again while in error; being re-checked
)

// HostState is the state seed 000 shows for a host.
type HostState string

// Host states.
const (
	HostEnabled  HostState = "enabled"
	HostDisabled HostState = "disabled"
	HostOffline  HostState = "offline"
	HostFlush    HostState = "flush"
	HostError    HostState = "error"
	HostRetry    HostState = "retry"
)

// Schedulable reports whether new domains may be placed on a node in s.
func (s HostState) Schedulable() bool { return s == HostEnabled }

// Monitored reports whether the node is monitored (and may run domains).
func (s HostState) Monitored() bool { return s != HostOffline }

// ErrTransition is returned for a state change the rules forbid.
var ErrTransition = errors.New("state: transition not allowed")

// ParseAdminState parses an operator-settable state.
func ParseAdminState(s string) (AdminState, error) {
	switch a := AdminState(s); a {
	case AdminEnabled, AdminDisabled, AdminOffline, AdminFlush:
		return a, nil
	}
	return "", fmt.Errorf("%w: %q is not one of enabled, disabled, offline, flush (error and retry are set by monitoring)", ErrTransition, s)
}

// CheckAdminTransition applies the operator rules:
//   - enabled, disabled: to any admin state;
//   - offline: to enabled or disabled (an unmonitored host has nothing to flush);
//   - flush: to enabled or disabled; not offline until flushed;
//   - the same state is a no-op and allowed.
func CheckAdminTransition(from, to AdminState) error {
	if _, err := ParseAdminState(string(to)); err != nil {
		return err
	}
	if from == to {
		return nil
	}
	switch {
	case from == AdminOffline && to == AdminFlush:
		return fmt.Errorf("%w: offline to flush: an offline host is not monitored; enable or disable it first", ErrTransition)
	case from == AdminFlush && to == AdminOffline:
		return fmt.Errorf("%w: flush to offline: wait until the flush finished (the host becomes disabled)", ErrTransition)
	}
	return nil
}

// CheckHealthTransition applies the monitoring rules: ok→error (confirmed
// dead), error→retry (heard from again), retry→ok (recovered), retry→error
// (lost again). Offline nodes are not monitored.
func CheckHealthTransition(admin AdminState, from, to Health) error {
	if admin == AdminOffline {
		return fmt.Errorf("%w: health of an offline host is not monitored", ErrTransition)
	}
	ok := false
	switch from {
	case HealthOK:
		ok = to == HealthError
	case HealthError:
		ok = to == HealthRetry
	case HealthRetry:
		ok = to == HealthOK || to == HealthError
	}
	if !ok {
		return fmt.Errorf("%w: health %s to %s", ErrTransition, from, to)
	}
	return nil
}
