// Package fio runs one fio job and reads its JSON result, for the
// benchmarks that measure block devices with fio (Debian package fio).
package fio

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
)

// Result is one job's throughput, reads and writes together.
type Result struct {
	BytesPerSec float64
	IOPS        float64
}

// MBps is the throughput in MB/s (10^6 bytes).
func (r Result) MBps() float64 { return r.BytesPerSec / 1e6 }

// Run runs fio with args (the job's options; --name and the JSON output
// are added) in dir, and returns its first job's result.
func Run(ctx context.Context, dir string, args ...string) (Result, error) {
	args = append([]string{"--name=b", "--output-format=json"}, args...)
	cmd := exec.CommandContext(ctx, "fio", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return Result{}, fmt.Errorf("fio %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var res struct {
		Jobs []struct {
			Read, Write struct {
				IOPS float64 `json:"iops"`
				BW   float64 `json:"bw_bytes"`
			}
		}
	}
	// fio may print notes before its JSON.
	if i := strings.IndexByte(string(out), '{'); i > 0 {
		out = out[i:]
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Jobs) == 0 {
		return Result{}, fmt.Errorf("fio %s: reading its output: %v", strings.Join(args, " "), err)
	}
	j := res.Jobs[0]
	return Result{BytesPerSec: j.Read.BW + j.Write.BW, IOPS: j.Read.IOPS + j.Write.IOPS}, nil
}
