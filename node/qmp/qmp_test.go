package qmp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/mvstack/mvstack/node/qmp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// socketpair returns two connected unix stream sockets, as QEMU's QMP
// socket is one.
func socketpair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int, name string) net.Conn {
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0], "client"), conn(fds[1], "server")
}

// The greeting QEMU 7.2 sends, byte for byte.
const greeting = `{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18"}, "capabilities": ["oob"]}}` + "\r\n"

// fakeQEMU answers commands from replies (command name → JSON reply
// without id; the id is spliced in) and records what it received.
type fakeQEMU struct {
	conn    net.Conn
	replies map[string]string
	mu      sync.Mutex
	got     []string
	wmu     sync.Mutex
	hold    map[string]chan struct{} // commands whose reply waits for a signal
	arrived map[string]chan struct{} // closed when the command first arrives
	quit    chan struct{}            // closed at cleanup: held replies are dropped
	stopped chan struct{}
}

// arrival returns a channel closed once the fake has received cmd.
func (f *fakeQEMU) arrival(cmd string) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.arrived[cmd]
	if !ok {
		ch = make(chan struct{})
		f.arrived[cmd] = ch
	}
	return ch
}

func startFake(t *testing.T, replies map[string]string) (*fakeQEMU, net.Conn) {
	t.Helper()
	c, s := socketpair(t)
	f := &fakeQEMU{conn: s, replies: replies, hold: map[string]chan struct{}{}, arrived: map[string]chan struct{}{}, quit: make(chan struct{}), stopped: make(chan struct{})}
	f.write(greeting)
	go f.serve()
	t.Cleanup(func() { close(f.quit); s.Close(); <-f.stopped })
	return f, c
}

func (f *fakeQEMU) write(s string) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.conn.Write([]byte(s))
}

func (f *fakeQEMU) serve() {
	defer close(f.stopped)
	dec := json.NewDecoder(bufio.NewReader(f.conn))
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var req struct {
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
			ID        json.RawMessage `json:"id"`
		}
		if err := dec.Decode(&req); err != nil {
			return
		}
		f.mu.Lock()
		f.got = append(f.got, req.Execute)
		hold := f.hold[req.Execute]
		if ch, ok := f.arrived[req.Execute]; !ok {
			ch = make(chan struct{})
			close(ch)
			f.arrived[req.Execute] = ch
		} else {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
		f.mu.Unlock()
		reply, ok := f.replies[req.Execute]
		if !ok {
			reply = `{"error": {"class": "CommandNotFound", "desc": "The command ` + req.Execute + ` has not been found"}}`
		}
		// Splice the id in before the closing brace, as QEMU echoes it.
		line := reply[:len(reply)-1] + `, "id": ` + string(req.ID) + "}\r\n"
		if hold != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case <-hold:
					f.write(line)
				case <-f.quit:
				}
			}()
			continue
		}
		f.write(line)
	}
}

func (f *fakeQEMU) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

var replies = map[string]string{
	"qmp_capabilities": `{"return": {}}`,
	"query-status":     `{"return": {"status": "running", "singlestep": false, "running": true}}`,
	"query-cpus-fast": `{"return": [{"thread-id": 4242, "props": {"core-id": 0, "thread-id": 0, "node-id": 0, "socket-id": 0}, "qom-path": "/machine/unattached/device[0]", "cpu-index": 0, "target": "x86_64"}, ` +
		`{"thread-id": 4243, "props": {"core-id": 0, "thread-id": 0, "node-id": 1, "socket-id": 1}, "qom-path": "/machine/unattached/device[1]", "cpu-index": 1, "target": "x86_64"}]}`,
	"query-blockstats": `{"return": [{"device": "", "node-name": "disk0", "qdev": "/machine/peripheral-anon/device[0]/virtio-backend", "stats": {"rd_bytes": 1048576, "wr_bytes": 4096, "rd_operations": 40, "wr_operations": 1, "flush_operations": 1}}]}`,
	"system_powerdown": `{"return": {}}`,
	"stop":             `{"return": {}}`,
	"cont":             `{"return": {}}`,
}

func TestHandshakeAndQueries(t *testing.T) {
	f, conn := startFake(t, replies)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := qmp.New(ctx, conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if g := c.Greeting(); g.Version.QEMU.Major != 7 || g.Version.QEMU.Micro != 22 {
		t.Errorf("greeting %+v", g)
	}
	st, err := c.QueryStatus(ctx)
	if err != nil || !st.Running || st.Status != "running" {
		t.Errorf("QueryStatus = %+v, %v", st, err)
	}
	cpus, err := c.QueryCPUs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) != 2 || cpus[1].ThreadID != 4243 || cpus[1].Index != 1 || *cpus[1].Props.NodeID != 1 || cpus[1].Props.SocketID != 1 {
		t.Errorf("QueryCPUs = %+v", cpus)
	}
	bs, err := c.QueryBlockStats(ctx)
	if err != nil || len(bs) != 1 || bs[0].Stats.RdOperations != 40 || bs[0].Node != "disk0" {
		t.Errorf("QueryBlockStats = %+v, %v", bs, err)
	}
	for _, op := range []func(context.Context) error{c.SystemPowerdown, c.Stop, c.Cont} {
		if err := op(ctx); err != nil {
			t.Error(err)
		}
	}
	want := []string{"qmp_capabilities", "query-status", "query-cpus-fast", "query-blockstats", "system_powerdown", "stop", "cont"}
	if diff := cmp.Diff(want, f.commands()); diff != "" {
		t.Errorf("commands sent (-want +got):\n%s", diff)
	}
}

func TestErrorReply(t *testing.T) {
	_, conn := startFake(t, replies)
	ctx := context.Background()
	c, err := qmp.New(ctx, conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Execute(ctx, "no-such-thing", nil, nil)
	var qe *qmp.Error
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" || qe.Command != "no-such-thing" {
		t.Errorf("Execute(no-such-thing) = %v", err)
	}
}

func TestEventsInOrder(t *testing.T) {
	f, conn := startFake(t, replies)
	got := make(chan qmp.Event, 4)
	c, err := qmp.New(context.Background(), conn, func(e qmp.Event) { got <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.write(`{"timestamp": {"seconds": 1700000000, "microseconds": 250000}, "event": "STOP"}` + "\r\n")
	f.write(`{"timestamp": {"seconds": 1700000001, "microseconds": 0}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}` + "\r\n")
	e := <-got
	if e.Name != "STOP" || !e.At.Equal(time.Unix(1700000000, 250000000)) {
		t.Errorf("first event %+v", e)
	}
	e = <-got
	var data struct {
		Guest  bool   `json:"guest"`
		Reason string `json:"reason"`
	}
	if e.Name != "SHUTDOWN" || json.Unmarshal(e.Data, &data) != nil || !data.Guest || data.Reason != "guest-shutdown" {
		t.Errorf("second event %+v (%+v)", e, data)
	}
}

func TestRepliesMatchedByID(t *testing.T) {
	f, conn := startFake(t, replies)
	ctx := context.Background()
	c, err := qmp.New(ctx, conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	release := make(chan struct{})
	f.mu.Lock()
	f.hold["query-status"] = release // its reply comes after the next one
	f.mu.Unlock()
	statusDone := make(chan error, 1)
	go func() {
		st, err := c.QueryStatus(ctx)
		if err == nil && !st.Running {
			err = errors.New("not running")
		}
		statusDone <- err
	}()
	// Wait until the fake has the held command, then run another.
	select {
	case <-f.arrival("query-status"):
	case err := <-statusDone:
		t.Fatalf("query-status returned before its reply: %v", err)
	}
	if cpus, err := c.QueryCPUs(ctx); err != nil || len(cpus) != 2 {
		t.Fatalf("QueryCPUs while another call waits = %v, %v", cpus, err)
	}
	close(release)
	if err := <-statusDone; err != nil {
		t.Errorf("held query-status: %v", err)
	}
}

func TestServerGoneFailsPending(t *testing.T) {
	f, conn := startFake(t, replies)
	ctx := context.Background()
	c, err := qmp.New(ctx, conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.mu.Lock()
	f.hold["stop"] = make(chan struct{}) // never answered
	f.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- c.Stop(ctx) }()
	<-f.arrival("stop")
	f.conn.Close() // QEMU died
	if err := <-errc; !errors.Is(err, qmp.ErrClosed) {
		t.Errorf("pending call after QEMU died = %v, want ErrClosed", err)
	}
	<-c.Done()
	if err := c.Cont(ctx); !errors.Is(err, qmp.ErrClosed) {
		t.Errorf("call after close = %v", err)
	}
	// quit counts a closed connection as success.
	if err := c.Quit(ctx); err != nil {
		t.Errorf("Quit on a closed connection = %v", err)
	}
}

func TestContextCancel(t *testing.T) {
	f, conn := startFake(t, replies)
	c, err := qmp.New(context.Background(), conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f.mu.Lock()
	f.hold["cont"] = make(chan struct{})
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Cont(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Cont with a cancelled ctx = %v", err)
	}
}

func TestNotAGreeting(t *testing.T) {
	c, s := socketpair(t)
	defer s.Close()
	go s.Write([]byte(`{"return": {}}` + "\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := qmp.New(ctx, c, nil); err == nil {
		t.Error("a non-greeting was accepted")
	}
	c.Close()
}

// FuzzServerBytes feeds arbitrary server output after the greeting: the
// client must neither panic nor hang; a command ends with a reply, an
// error or ErrClosed.
func FuzzServerBytes(f *testing.F) {
	f.Add([]byte(`{"return": {}, "id": "1"}` + "\n" + `{"return": {"running": true, "status": "running"}, "id": "2"}`))
	f.Add([]byte(`{"event": "SHUTDOWN", "data": {"guest": true}, "timestamp": {"seconds": 1, "microseconds": 2}}`))
	f.Add([]byte(`{"error": {"class": "GenericError", "desc": "x"}, "id": "1"}`))
	f.Add([]byte(`{"return": [1,2,3], "id": "2"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, s := socketpair(t)
		go func() {
			s.Write([]byte(greeting))
			s.Write(b)
			s.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cl, err := qmp.New(ctx, c, func(qmp.Event) {})
		if err != nil {
			c.Close()
			return
		}
		cl.QueryStatus(ctx)
		cl.Close()
	})
}
