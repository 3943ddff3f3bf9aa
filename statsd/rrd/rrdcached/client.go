package rrdcached

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mvstack/mvstack/statsd/rrd"
)

// Errors.
var (
	// ErrServer is an error status from rrdcached (negative status code).
	ErrServer = errors.New("rrdcached: server error")
	// ErrProtocol is an answer the client does not understand.
	ErrProtocol = errors.New("rrdcached: protocol error")
)

// Config configures a Client.
type Config struct {
	// Addr is the socket: "unix:/path", "/path" or "host:port".
	Addr        string
	DialTimeout time.Duration
	Logger      *slog.Logger // nil: discard
}

// DefaultConfig returns the configuration for rrdcached's default socket.
func DefaultConfig() Config {
	return Config{Addr: "unix:/tmp/rrdcached.sock", DialTimeout: 5 * time.Second}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Addr == "" {
		return fmt.Errorf("rrdcached: Config.Addr is empty")
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("rrdcached: Config.DialTimeout %v is negative", c.DialTimeout)
	}
	return nil
}

// Client speaks rrdcached's protocol on one connection.
type Client struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	log  *slog.Logger
}

// Dial connects to rrdcached.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	network, addr := "tcp", cfg.Addr
	switch {
	case strings.HasPrefix(addr, "unix:"):
		network, addr = "unix", strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "/"):
		network = "unix"
	}
	d := net.Dialer{Timeout: cfg.DialTimeout}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("rrdcached: dial %s: %w", cfg.Addr, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriterSize(conn, 256<<10), log: log}, nil
}

// Close says QUIT and closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.WriteString("QUIT\n")
	c.w.Flush()
	return c.conn.Close()
}

// Response is a status line and the lines that follow it.
type Response struct {
	Status  int
	Message string
	Lines   []string
}

func (c *Client) deadline(ctx context.Context) {
	if d, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(d)
	} else {
		c.conn.SetDeadline(time.Time{})
	}
}

func (c *Client) readResponse() (*Response, error) {
	l, err := c.r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("rrdcached: read: %w", err)
	}
	l = strings.TrimRight(l, "\r\n")
	code, msg, _ := strings.Cut(strings.TrimLeft(l, " "), " ")
	n, err := strconv.Atoi(code)
	if err != nil {
		return nil, fmt.Errorf("%w: status line %q", ErrProtocol, l)
	}
	resp := &Response{Status: n, Message: strings.TrimSpace(msg)}
	if n < 0 {
		return resp, fmt.Errorf("%w: %s", ErrServer, resp.Message)
	}
	if n > 1<<24 {
		return nil, fmt.Errorf("%w: %d lines announced", ErrProtocol, n)
	}
	for i := 0; i < n; i++ {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("rrdcached: read: %w", err)
		}
		resp.Lines = append(resp.Lines, strings.TrimRight(l, "\r\n"))
	}
	return resp, nil
}

// Do sends one command line and reads its answer.
func (c *Client) Do(ctx context.Context, line string) (*Response, error) {
	if strings.ContainsAny(line, "\n\r") {
		return nil, fmt.Errorf("rrdcached: command %q contains a line break", line)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline(ctx)
	c.w.WriteString(line)
	c.w.WriteByte('\n')
	if err := c.w.Flush(); err != nil {
		return nil, fmt.Errorf("rrdcached: write: %w", err)
	}
	return c.readResponse()
}

// Update sends values ("time:v1:v2...", absolute times) for one file.
func (c *Client) Update(ctx context.Context, file string, values ...string) error {
	_, err := c.Do(ctx, "UPDATE "+file+" "+strings.Join(values, " "))
	return err
}

// BatchError is one failed command of a batch (Index counts from 1).
type BatchError struct {
	Index   int
	Message string
}

// Batch sends many commands with BATCH: one round trip. It returns the
// commands that failed; err is for the batch itself.
func (c *Client) Batch(ctx context.Context, cmds []string) ([]BatchError, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline(ctx)
	c.w.WriteString("BATCH\n")
	if err := c.w.Flush(); err != nil {
		return nil, fmt.Errorf("rrdcached: write: %w", err)
	}
	if _, err := c.readResponse(); err != nil {
		return nil, err
	}
	for _, cmd := range cmds {
		if strings.ContainsAny(cmd, "\n\r") || cmd == "." {
			return nil, fmt.Errorf("rrdcached: batch command %q is not one line", cmd)
		}
		c.w.WriteString(cmd)
		c.w.WriteByte('\n')
	}
	c.w.WriteString(".\n")
	if err := c.w.Flush(); err != nil {
		return nil, fmt.Errorf("rrdcached: write: %w", err)
	}
	resp, err := c.readResponse()
	if err != nil {
		return nil, err
	}
	var errs []BatchError
	for _, l := range resp.Lines {
		num, msg, _ := strings.Cut(l, " ")
		i, err := strconv.Atoi(num)
		if err != nil {
			return errs, fmt.Errorf("%w: batch error line %q", ErrProtocol, l)
		}
		errs = append(errs, BatchError{Index: i, Message: msg})
	}
	return errs, nil
}

// Flush asks rrdcached to write a file's pending values now; it answers
// once they are written.
func (c *Client) Flush(ctx context.Context, file string) error {
	_, err := c.Do(ctx, "FLUSH "+file)
	return err
}

// FlushAll asks rrdcached to start writing every pending value.
func (c *Client) FlushAll(ctx context.Context) error {
	_, err := c.Do(ctx, "FLUSHALL")
	return err
}

// Ping checks the connection.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Do(ctx, "PING")
	return err
}

// Stats returns rrdcached's counters (QueueLength, UpdatesReceived,
// DataSetsWritten, ...).
func (c *Client) Stats(ctx context.Context) (map[string]uint64, error) {
	resp, err := c.Do(ctx, "STATS")
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, l := range resp.Lines {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return nil, fmt.Errorf("%w: stats line %q", ErrProtocol, l)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: stats line %q", ErrProtocol, l)
		}
		out[strings.TrimSpace(k)] = n
	}
	return out, nil
}

// Create creates a real .rrd file through rrdcached (CREATE).
func (c *Client) Create(ctx context.Context, file string, spec rrd.Spec, start int64, noOverwrite bool) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	parts := []string{"CREATE", file, "-s", strconv.FormatUint(spec.Step, 10), "-b", strconv.FormatInt(start, 10)}
	if noOverwrite {
		parts = append(parts, "-O")
	}
	for _, d := range spec.DS {
		parts = append(parts, d.String())
	}
	for _, a := range spec.RRA {
		parts = append(parts, a.String())
	}
	_, err := c.Do(ctx, strings.Join(parts, " "))
	return err
}

// FormatUpdate formats one update the way rrdtool and rrdcached take it:
// "time:v1:v2" with U for unknown.
func FormatUpdate(t rrd.Time, vals []rrd.Value) string {
	var b strings.Builder
	b.WriteString(t.String())
	for _, v := range vals {
		b.WriteByte(':')
		b.WriteString(v.String())
	}
	return b.String()
}
