package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ErrClosed is returned for calls on a closed connection, or pending when
// QEMU closed it.
var ErrClosed = errors.New("qmp: connection closed")

// Error is an error QEMU returned for a command.
type Error struct {
	Command string
	Class   string // e.g. "GenericError", "CommandNotFound"
	Desc    string
}

func (e *Error) Error() string { return fmt.Sprintf("qmp: %s: %s: %s", e.Command, e.Class, e.Desc) }

// Event is an asynchronous QMP event ("SHUTDOWN", "STOP", "RESUME", …).
type Event struct {
	Name string
	Data json.RawMessage
	At   time.Time
}

// Greeting is the server's banner.
type Greeting struct {
	Version struct {
		QEMU struct {
			Major int `json:"major"`
			Minor int `json:"minor"`
			Micro int `json:"micro"`
		} `json:"qemu"`
		Package string `json:"package"`
	} `json:"version"`
	Capabilities []string `json:"capabilities"`
}

// Client speaks QMP on one connection. Commands may be issued from several
// goroutines; replies are matched by id.
type Client struct {
	conn     net.Conn
	greeting Greeting
	onEvent  func(Event)

	wmu sync.Mutex // serialises writes
	mu  sync.Mutex
	seq uint64
	// pending maps a command id to the channel its reply goes to.
	pending map[string]chan message
	err     error
	done    chan struct{}
}

// message is any QMP message from the server.
type message struct {
	QMP    *Greeting       `json:"QMP,omitempty"`
	Return json.RawMessage `json:"return,omitempty"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error,omitempty"`
	ID        json.RawMessage `json:"id,omitempty"`
	Event     string          `json:"event,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp,omitempty"`
}

// Dial connects to a QMP unix socket and negotiates capabilities.
func Dial(ctx context.Context, path string, onEvent func(Event)) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	c, err := New(ctx, conn, onEvent)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// New runs QMP on conn: it reads the greeting, enters command mode
// (qmp_capabilities) and starts the reader. onEvent (may be nil) is called
// from the reader goroutine for each event, in order; it must not block
// for long or call the client synchronously. The client owns conn.
func New(ctx context.Context, conn net.Conn, onEvent func(Event)) (*Client, error) {
	c := &Client{conn: conn, onEvent: onEvent, pending: map[string]chan message{}, done: make(chan struct{})}
	dec := json.NewDecoder(bufio.NewReader(conn))
	if dl, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(dl)
	}
	var g message
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("qmp: reading greeting: %w", err)
	}
	if g.QMP == nil {
		return nil, fmt.Errorf("qmp: first message is not a greeting")
	}
	conn.SetReadDeadline(time.Time{})
	c.greeting = *g.QMP
	go c.read(dec)
	if err := c.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Greeting returns the server's banner.
func (c *Client) Greeting() Greeting { return c.greeting }

// Done is closed when the connection ends.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection; pending calls fail with ErrClosed.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

func (c *Client) read(dec *json.Decoder) {
	var err error
	for {
		var m message
		if err = dec.Decode(&m); err != nil {
			break
		}
		switch {
		case m.Event != "":
			if c.onEvent != nil {
				e := Event{Name: m.Event, Data: m.Data}
				if m.Timestamp != nil {
					e.At = time.Unix(m.Timestamp.Seconds, m.Timestamp.Microseconds*1000)
				}
				c.onEvent(e)
			}
		case m.ID != nil:
			c.mu.Lock()
			ch := c.pending[string(m.ID)]
			delete(c.pending, string(m.ID))
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %v", ErrClosed, err)
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
	close(c.done)
}

// Execute runs cmd with args (marshalled to JSON; nil for none) and
// decodes the return value into result (nil to ignore it). QEMU's
// errors come back as *Error.
func (c *Client) Execute(ctx context.Context, cmd string, args, result any) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.seq++
	id := fmt.Sprintf(`"%d"`, c.seq)
	ch := make(chan message, 1)
	c.pending[id] = ch
	c.mu.Unlock()

	req := struct {
		Execute   string          `json:"execute"`
		Arguments any             `json:"arguments,omitempty"`
		ID        json.RawMessage `json:"id"`
	}{cmd, args, json.RawMessage(id)}
	b, err := json.Marshal(req)
	if err != nil {
		c.forget(id)
		return fmt.Errorf("qmp: %s: %w", cmd, err)
	}
	c.wmu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetWriteDeadline(dl)
	}
	_, err = c.conn.Write(append(b, '\n'))
	c.conn.SetWriteDeadline(time.Time{})
	c.wmu.Unlock()
	if err != nil {
		c.forget(id)
		return fmt.Errorf("qmp: %s: %w", cmd, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return fmt.Errorf("qmp: %s: %w", cmd, err)
		}
		if m.Error != nil {
			return &Error{Command: cmd, Class: m.Error.Class, Desc: m.Error.Desc}
		}
		if result != nil && len(m.Return) > 0 {
			if err := json.Unmarshal(m.Return, result); err != nil {
				return fmt.Errorf("qmp: %s: decoding reply: %w", cmd, err)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		return fmt.Errorf("qmp: %s: %w", cmd, ctx.Err())
	}
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Status is the reply of query-status.
type Status struct {
	Running bool   `json:"running"`
	Status  string `json:"status"` // "running", "paused", "shutdown", "prelaunch", …
}

// QueryStatus asks whether the guest runs.
func (c *Client) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	err := c.Execute(ctx, "query-status", nil, &s)
	return s, err
}

// CPU is one vCPU from query-cpus-fast.
type CPU struct {
	Index    int `json:"cpu-index"`
	ThreadID int `json:"thread-id"`
	Props    struct {
		NodeID   *int `json:"node-id,omitempty"`
		SocketID int  `json:"socket-id"`
		CoreID   int  `json:"core-id"`
		ThreadID int  `json:"thread-id"`
	} `json:"props"`
	Target string `json:"target"`
}

// QueryCPUs returns the vCPUs with their host thread ids.
func (c *Client) QueryCPUs(ctx context.Context) ([]CPU, error) {
	var cpus []CPU
	err := c.Execute(ctx, "query-cpus-fast", nil, &cpus)
	return cpus, err
}

// BlockStats is one device from query-blockstats.
type BlockStats struct {
	Device string `json:"device"`
	QDev   string `json:"qdev"`
	Node   string `json:"node-name"`
	Stats  struct {
		RdBytes      uint64 `json:"rd_bytes"`
		WrBytes      uint64 `json:"wr_bytes"`
		RdOperations uint64 `json:"rd_operations"`
		WrOperations uint64 `json:"wr_operations"`
		FlushOps     uint64 `json:"flush_operations"`
	} `json:"stats"`
}

// QueryBlockStats returns the block devices' counters.
func (c *Client) QueryBlockStats(ctx context.Context) ([]BlockStats, error) {
	var s []BlockStats
	err := c.Execute(ctx, "query-blockstats", nil, &s)
	return s, err
}

// SystemPowerdown presses the ACPI power button.
func (c *Client) SystemPowerdown(ctx context.Context) error {
	return c.Execute(ctx, "system_powerdown", nil, nil)
}

// SystemReset resets the guest.
func (c *Client) SystemReset(ctx context.Context) error {
	return c.Execute(ctx, "system_reset", nil, nil)
}

// Stop pauses the guest's vCPUs.
func (c *Client) Stop(ctx context.Context) error { return c.Execute(ctx, "stop", nil, nil) }

// Cont resumes the guest's vCPUs.
func (c *Client) Cont(ctx context.Context) error { return c.Execute(ctx, "cont", nil, nil) }

// Quit makes QEMU exit at once. QEMU may close the connection before or
// after it replies; both count as success.
func (c *Client) Quit(ctx context.Context) error {
	err := c.Execute(ctx, "quit", nil, nil)
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}
