package proto

// replayWindow rejects frame counters seen before, and counters too far
// behind the highest one seen, like IPsec's anti-replay window (RFC 4303
// §3.4.3). Counters are per sender epoch and only grow, but frames may
// arrive reordered; the window remembers the last replayWindowSize.
type replayWindow struct {
	top  uint64 // highest counter accepted; 0 = none yet
	bits [replayWindowSize / 64]uint64
}

const replayWindowSize = 4096

// check reports whether counter is new, and records it if so.
func (w *replayWindow) check(counter uint64) bool {
	if counter == 0 {
		return false // counters start at 1
	}
	if counter > w.top {
		shift := counter - w.top
		if shift >= replayWindowSize {
			clear(w.bits[:])
		} else {
			for c := w.top + 1; c <= counter; c++ {
				w.bits[(c/64)%uint64(len(w.bits))] &^= 1 << (c % 64)
			}
		}
		w.top = counter
		w.set(counter)
		return true
	}
	if w.top-counter >= replayWindowSize {
		return false
	}
	if w.get(counter) {
		return false
	}
	w.set(counter)
	return true
}

func (w *replayWindow) get(c uint64) bool {
	return w.bits[(c/64)%uint64(len(w.bits))]&(1<<(c%64)) != 0
}

func (w *replayWindow) set(c uint64) {
	w.bits[(c/64)%uint64(len(w.bits))] |= 1 << (c % 64)
}
