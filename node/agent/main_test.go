package agent_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test closes its agents and endpoints: nothing may be left running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
