package pool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestKill9 runs the pool in a child process (this test binary again)
// that writes from several goroutines while a scratch volume is created,
// filled, discarded and deleted over and over, and kills it with SIGKILL
// after it reported some synced writes. The pool must open, hold every
// write the child saw Sync return for (or a later one), show no volume
// another's data, and have zeros in every free chunk. Three rounds on one
// drive.

const (
	killVols    = 4
	killVolSize = 6 * MiB
)

func TestKill9(t *testing.T) {
	if path := os.Getenv("MVPOOL_KILL9_DRIVE"); path != "" {
		round, _ := strconv.Atoi(os.Getenv("MVPOOL_KILL9_ROUND"))
		kill9Child(path, round)
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := newDrive(t, 24*MiB)
	if err := Format(path, FormatOptions{ChunkSize: 64 * KiB, MaxVolumes: 8}); err != nil {
		t.Fatal(err)
	}
	acked := map[[2]uint32]uint32{} // volume tag, block → version
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MVPOOL_KILL9_DRIVE="+path, fmt.Sprint("MVPOOL_KILL9_ROUND=", round))
		cmd.Stderr = os.Stderr
		// The child dies with the test process, whatever happens to it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		want := 200 + 300*round
		n := 0
		sc := bufio.NewScanner(out)
		for n < want && sc.Scan() {
			var tag, blk, ver uint32
			if _, err := fmt.Sscanf(sc.Text(), "ack %d %d %d", &tag, &blk, &ver); err != nil {
				continue
			}
			k := [2]uint32{tag, blk}
			acked[k] = max(acked[k], ver)
			n++
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if n < want {
			t.Fatalf("round %d: child stopped after %d acknowledgements", round, n)
		}
		if err := checkKilled(path, acked); err != nil {
			t.Fatalf("round %d, after SIGKILL: %v", round, err)
		}
	}
}

func checkKilled(path string, acked map[[2]uint32]uint32) error {
	p, err := Open(path)
	if err != nil {
		return err
	}
	defer p.Close()
	var allocated int64
	for _, info := range p.Volumes() {
		allocated += info.Allocated / p.sb.ChunkSize
		var tag uint32
		if _, err := fmt.Sscanf(info.ID, "d%d", &tag); err != nil {
			continue // the scratch volume
		}
		v, _ := p.Volume(info.ID)
		buf := make([]byte, crashBlock)
		for blk := uint32(0); int64(blk)*crashBlock < v.Size(); blk++ {
			if _, err := v.ReadAt(buf, int64(blk)*crashBlock); err != nil {
				return err
			}
			min := acked[[2]uint32{tag, blk}]
			for s := range uint32(crashBlock / 512) {
				got := buf[s*512 : (s+1)*512]
				if allZero(got) {
					if min != 0 {
						return fmt.Errorf("%s block %d: zeros, synced version %d", info.ID, blk, min)
					}
					continue
				}
				gt, gb, gv := binary.LittleEndian.Uint32(got), binary.LittleEndian.Uint32(got[4:]), binary.LittleEndian.Uint32(got[8:])
				if string(got) != string(sector(gt, gb, gv, s)) || gt != tag || gb != blk || gv < min {
					return fmt.Errorf("%s block %d sector %d: tag %d block %d version %d, want tag %d version ≥ %d", info.ID, blk, s, gt, gb, gv, tag, min)
				}
			}
		}
	}
	st := p.Stats()
	if allocated+st.FreeChunks != st.Chunks {
		return fmt.Errorf("%d chunks allocated + %d free != %d", allocated, st.FreeChunks, st.Chunks)
	}
	// Free chunks read zeros.
	if st.FreeChunks > 0 {
		v, err := p.Create("zcheck", st.FreeChunks*st.ChunkSize, false)
		if err != nil {
			return err
		}
		buf := make([]byte, st.ChunkSize)
		for c := range st.FreeChunks {
			if _, err := v.WriteAt([]byte{1}, c*st.ChunkSize); err != nil {
				return err
			}
			if _, err := v.ReadAt(buf, c*st.ChunkSize); err != nil {
				return err
			}
			if !allZero(buf[1:]) {
				return errors.New("a free chunk held data")
			}
		}
		return p.Delete("zcheck")
	}
	return nil
}

// kill9Child writes until it is killed, printing "ack TAG BLOCK VERSION"
// for every write a Sync covered.
func kill9Child(path string, round int) {
	time.AfterFunc(2*time.Minute, func() { os.Exit(3) }) // never outlive a stuck parent
	p, err := Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	var ver atomic.Uint32
	ver.Store(uint32(round+1) << 24)
	for _, info := range p.Volumes() { // a scratch volume of the last round
		if info.ID[0] != 'd' {
			p.Delete(info.ID)
		}
	}
	for i := range killVols {
		id := fmt.Sprint("d", i+1)
		if _, err := p.Volume(id); errors.Is(err, ErrNotFound) {
			if _, err := p.Create(id, killVolSize, i == 0); err != nil {
				fmt.Fprintln(os.Stderr, "child:", err)
				os.Exit(2)
			}
		}
	}
	for i := range killVols {
		v, _ := p.Volume(fmt.Sprint("d", i+1))
		go func() {
			rng := rand.New(rand.NewPCG(uint64(round), uint64(i)))
			tag := uint32(i + 1)
			var pending [][2]uint32
			for {
				blk := uint32(rng.IntN(killVolSize / crashBlock))
				ver := ver.Add(1)
				_, err := v.WriteAt(blockData(tag, blk, ver), int64(blk)*crashBlock)
				if errors.Is(err, syscall.ENOSPC) {
					continue
				} else if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(2)
				}
				pending = append(pending, [2]uint32{blk, ver})
				if len(pending) < 8 {
					continue
				}
				if err := v.Sync(); err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(2)
				}
				out.Lock()
				for _, w := range pending {
					fmt.Printf("ack %d %d %d\n", tag, w[0], w[1])
				}
				out.Unlock()
				pending = pending[:0]
			}
		}()
	}
	// The scratch volume comes and goes.
	for n := 0; ; n++ {
		id := fmt.Sprint("scratch", n)
		v, err := p.Create(id, 2*MiB, n%3 == 0)
		if errors.Is(err, syscall.ENOSPC) {
			time.Sleep(time.Millisecond) // wait for the writers to stop taking chunks
			continue
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		for off := int64(0); off < v.Size(); off += 64 * KiB {
			v.WriteAt(blockData(100, uint32(off/crashBlock), 1), off)
		}
		v.Discard(0, MiB)
		if err := p.Delete(id); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
	}
}
