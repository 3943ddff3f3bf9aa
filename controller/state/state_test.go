package state

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mvstack/mvstack/proto"
)

var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

func mac(t *testing.T, s string) proto.MAC {
	t.Helper()
	m, err := proto.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func inventory() Inventory {
	return Inventory{
		Hostname: "mv1", Arch: "x86_64", Hypervisor: "sim",
		CPU: CPU{Vendor: "GenuineIntel", Model: "Xeon", MHz: 2400, Features: []string{"vmx", "avx2"}},
		NUMA: []NUMA{
			{ID: 0, Cores: []uint32{0, 1}, MemoryMB: 4096, Distances: []uint32{10, 21}},
			{ID: 1, Cores: []uint32{2, 3}, MemoryMB: 4096, Distances: []uint32{21, 10}},
		},
		MemoryMB: 8192,
		Disks:    []Disk{{ID: "3584916917", Name: "sda", SizeMB: 100000}},
		Location: Location{Rack: "r1", Chassis: "c1", Blade: "b1"},
	}
}

func apply(t testing.TB, s *State, c Command) any {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Apply(b)
	if err != nil {
		t.Fatalf("apply %s: %v", c.Type(), err)
	}
	return r
}

func TestRegisterNodeIDFromMAC(t *testing.T) {
	s := New()
	r := apply(t, s, RegisterNode{At: t0, MAC: mac(t, "0c:c4:7a:77:f9:af"), Inventory: inventory()})
	n := r.(Node)
	if n.ID != "7a77f9af" || n.State() != HostEnabled {
		t.Fatalf("registered node id %q state %s, want 7a77f9af enabled", n.ID, n.State())
	}
	want := []Core{{"7a77f9af_0", "7a77f9af", 0, 0}, {"7a77f9af_1", "7a77f9af", 1, 0}, {"7a77f9af_2", "7a77f9af", 2, 1}, {"7a77f9af_3", "7a77f9af", 3, 1}}
	if d := cmp.Diff(want, n.Cores()); d != "" {
		t.Errorf("cores (-want +got):\n%s", d)
	}
	// Hardware change updates the inventory, keeps the state.
	apply(t, s, SetAdmin{At: t0, Node: n.ID, State: AdminDisabled})
	inv := inventory()
	inv.MemoryMB = 16384
	apply(t, s, RegisterNode{At: t0.Add(time.Second), MAC: n.MAC, Inventory: inv})
	if got := s.Nodes[n.ID]; got.Inventory.MemoryMB != 16384 || got.State() != HostDisabled {
		t.Errorf("after re-registration memory %d state %s, want 16384 disabled", got.Inventory.MemoryMB, got.State())
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode(RemoveNode{At: t0, Node: "x"})
	if err != nil {
		t.Fatal(err)
	}
	unknownField, _ := cb.enc.Marshal(map[string]any{"At": t0, "Node": "x", "Extra": 1})
	tests := []struct {
		desc string
		b    []byte
		want error
	}{
		{"empty", nil, io.ErrUnexpectedEOF},
		{"one byte", []byte{1}, io.ErrUnexpectedEOF},
		{"version 2", append([]byte{2}, good[1:]...), ErrUnknownVersion},
		{"version 0", append([]byte{0}, good[1:]...), ErrUnknownVersion},
		{"type 0", append([]byte{1, 0}, good[2:]...), ErrUnknownCommand},
		{"type 200", append([]byte{1, 200}, good[2:]...), ErrUnknownCommand},
		{"trailing byte", append(bytes.Clone(good), 0), ErrMalformed},
		{"unknown field", append([]byte{1, byte(TypeRemoveNode)}, unknownField...), ErrMalformed},
		{"wrong type body", append([]byte{1, byte(TypeRemoveNode)}, 0x01), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s := New()
			if _, err := s.Apply(tt.b); !errors.Is(err, tt.want) {
				t.Errorf("Apply(% x) = %v, want %v", tt.b, err, tt.want)
			}
		})
	}
}

func TestEncodeBytes(t *testing.T) {
	b, err := Encode(RevokeToken{At: t0, ID: "ab"})
	if err != nil {
		t.Fatal(err)
	}
	// version 1, type 7, map(2) {"ID": "ab", "At": "2026-11-22T09:00:00Z"} in
	// core deterministic key order (shorter keys first, then bytewise).
	want := append([]byte{0x01, 0x07, 0xa2, 0x62, 'A', 't', 0x74}, "2026-11-22T09:00:00Z"...)
	want = append(want, 0x62, 'I', 'D', 0x62, 'a', 'b')
	if d := cmp.Diff(want, b); d != "" {
		t.Errorf("encoding (-want +got):\n%s", d)
	}
}

func TestAdminTransitions(t *testing.T) {
	tests := []struct {
		from, to AdminState
		ok       bool
	}{
		{AdminEnabled, AdminDisabled, true},
		{AdminEnabled, AdminOffline, true},
		{AdminEnabled, AdminFlush, true},
		{AdminDisabled, AdminEnabled, true},
		{AdminOffline, AdminEnabled, true},
		{AdminOffline, AdminFlush, false},
		{AdminFlush, AdminOffline, false},
		{AdminFlush, AdminEnabled, true},
		{AdminEnabled, AdminEnabled, true},
		{AdminEnabled, "error", false},
		{AdminEnabled, "retry", false},
		{AdminEnabled, "bogus", false},
	}
	for _, tt := range tests {
		err := CheckAdminTransition(tt.from, tt.to)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrTransition)) {
			t.Errorf("%s -> %s: err %v, want allowed=%v", tt.from, tt.to, err, tt.ok)
		}
	}
}

func TestHealthLifecycle(t *testing.T) {
	s := New()
	n := apply(t, s, RegisterNode{At: t0, MAC: mac(t, "02:00:00:00:00:01"), Inventory: inventory()}).(Node)
	steps := []struct {
		h    Health
		want HostState
		ok   bool
	}{
		{HealthRetry, HostEnabled, false}, // ok -> retry is not a rule
		{HealthError, HostError, true},
		{HealthOK, HostError, false}, // error must pass through retry
		{HealthRetry, HostRetry, true},
		{HealthError, HostError, true},
		{HealthRetry, HostRetry, true},
		{HealthOK, HostEnabled, true},
	}
	for i, st := range steps {
		b, _ := Encode(SetHealth{At: t0, Node: n.ID, Health: st.h, Reason: "test"})
		_, err := s.Apply(b)
		if (err == nil) != st.ok {
			t.Fatalf("step %d to %s: err %v, want ok=%v", i, st.h, err, st.ok)
		}
		if got := s.Nodes[n.ID].State(); got != st.want {
			t.Fatalf("step %d: state %s, want %s", i, got, st.want)
		}
	}
	// Offline hides health and is not monitored.
	apply(t, s, SetAdmin{At: t0, Node: n.ID, State: AdminOffline})
	b, _ := Encode(SetHealth{At: t0, Node: n.ID, Health: HealthError})
	if _, err := s.Apply(b); !errors.Is(err, ErrTransition) {
		t.Errorf("health change of offline node: %v, want ErrTransition", err)
	}
	if got := s.Nodes[n.ID].State(); got != HostOffline {
		t.Errorf("state %s, want offline", got)
	}
}

func TestFlushEndsDisabled(t *testing.T) {
	s := New()
	n := apply(t, s, RegisterNode{At: t0, MAC: mac(t, "02:00:00:00:00:01"), Inventory: inventory()}).(Node)
	apply(t, s, UpdateMonitoring{At: t0, Node: n.ID, Monitoring: Monitoring{AllocCPU: 200, AllocMemKB: 1024}})
	apply(t, s, SetAdmin{At: t0, Node: n.ID, State: AdminFlush})
	if got := s.Nodes[n.ID].State(); got != HostFlush {
		t.Fatalf("state %s, want flush", got)
	}
	apply(t, s, UpdateMonitoring{At: t0, Node: n.ID, Monitoring: Monitoring{AllocCPU: 0, AllocMemKB: 0}})
	if got := s.Nodes[n.ID].State(); got != HostDisabled {
		t.Fatalf("state after the host emptied %s, want disabled", got)
	}
}

func TestSnapshotRestoreReplacesAndIsDeterministic(t *testing.T) {
	cmds := []Command{
		RegisterNode{At: t0, MAC: mac(t, "02:00:00:00:00:01"), Inventory: inventory()},
		RegisterNode{At: t0, MAC: mac(t, "02:00:00:00:00:02"), Inventory: inventory()},
		SetAdmin{At: t0, Node: "00000002", State: AdminDisabled},
		CreateToken{At: t0, ID: "t1", Name: "ops", Hash: bytes.Repeat([]byte{7}, 32)},
		SetReplica{At: t0, ID: "c1", APIAddr: "127.0.0.1:1"},
	}
	a, b := New(), New()
	for _, c := range cmds {
		apply(t, a, c)
		apply(t, b, c)
	}
	var sa, sb bytes.Buffer
	if err := a.Snapshot(&sa); err != nil {
		t.Fatal(err)
	}
	if err := b.Snapshot(&sb); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sa.Bytes(), sb.Bytes()) {
		t.Fatal("two replicas applying the same commands wrote different snapshots")
	}
	r, err := Restore(bytes.NewReader(sa.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(a, r); d != "" {
		t.Errorf("restored state (-want +got):\n%s", d)
	}
	if _, ok := r.CheckToken("t1", bytes.Repeat([]byte{7}, 32)); !ok {
		t.Error("restored state lost the token hash")
	}
	if _, err := Restore(bytes.NewReader(append([]byte{9}, sa.Bytes()[1:]...))); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("restore of version 9: %v, want ErrUnknownVersion", err)
	}
}

func TestEventsBounded(t *testing.T) {
	s := New()
	n := apply(t, s, RegisterNode{At: t0, MAC: mac(t, "02:00:00:00:00:01"), Inventory: inventory()}).(Node)
	for i := 0; i < MaxEvents+10; i++ {
		st := AdminDisabled
		if i%2 == 1 {
			st = AdminEnabled
		}
		apply(t, s, SetAdmin{At: t0, Node: n.ID, State: st})
	}
	if len(s.Events) != MaxEvents || s.Events[len(s.Events)-1].Seq != uint64(MaxEvents+11) {
		t.Errorf("events: %d kept, last seq %d; want %d kept, last %d", len(s.Events), s.Events[len(s.Events)-1].Seq, MaxEvents, MaxEvents+11)
	}
}
