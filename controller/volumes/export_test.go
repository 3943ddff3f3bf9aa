package volumes

import (
	"context"
	"time"
)

// Loop is one leadership's loop state, for tests that step the loop by
// hand with their own clock.
type Loop = loopState

// Start begins a leadership's loop state without running the loop.
func (m *Manager) Start(ctx context.Context) *Loop { return m.start(ctx) }

// Stop ends it, waiting for the work it started.
func (m *Manager) Stop(l *Loop) { m.stop(l) }

// Step runs one round of the loop at now.
func (m *Manager) Step(l *Loop, now time.Time) { m.step(l, now) }

// Settle waits for the work the loop started.
func (l *Loop) Settle() { l.wg.Wait() }
