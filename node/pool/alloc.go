package pool

// Allocation is a group commit: a writer that needs chunks queues a
// request; one writer at a time leads, taking every queued request under
// the pool's lock, writing the table blocks they touch once (each write
// durable on return), and only then mapping the chunks and answering. So
// writers that need chunks while a table write is under way share the next
// one, and no data reaches a chunk before its entry is durable.

type allocReq struct {
	v        *Volume
	off, n   int64
	first    int64 // logical chunks first..last must be mapped
	last     int64
	err      error
	done     chan struct{} // closed when answered
	promote  chan struct{} // closed when it is to lead the next batch
	granted  []int64       // logical chunks taken for it
	physical []uint32      // and their physical chunks
}

// allocate makes sure every chunk under [off, off+n) of v is mapped.
func (v *Volume) allocate(off, n int64) error {
	sh := v.p.shift
	first, last := off>>sh, (off+n-1)>>sh
	mapped := true
	for l := first; l <= last && mapped; l++ {
		mapped = v.m.get(l) != 0
	}
	if mapped {
		return nil
	}
	p := v.p
	r := &allocReq{v: v, off: off, n: n, first: first, last: last, done: make(chan struct{}), promote: make(chan struct{})}
	p.qmu.Lock()
	p.queue = append(p.queue, r)
	lead := !p.leading
	p.leading = true
	p.qmu.Unlock()
	if !lead {
		select {
		case <-r.done:
			return r.err
		case <-r.promote:
		}
	}
	p.lead()
	<-r.done
	return r.err
}

// lead serves one batch: every request queued now, its own among them.
// Then it hands the lead to the oldest request still waiting, if any, so
// that no writer serves others for long.
func (p *Pool) lead() {
	p.qmu.Lock()
	batch := p.queue
	p.queue = nil
	p.qmu.Unlock()
	p.mu.Lock()
	p.allocBatch(batch)
	p.mu.Unlock()
	for _, r := range batch {
		close(r.done)
	}
	p.qmu.Lock()
	defer p.qmu.Unlock()
	if len(p.queue) == 0 {
		p.leading = false
		return
	}
	close(p.queue[0].promote)
}

// allocBatch takes chunks for every request of batch (all a request needs,
// or none with ENOSPC), writes their entries, then maps them.
func (p *Pool) allocBatch(batch []*allocReq) {
	if err := p.usable(); err != nil {
		for _, r := range batch {
			r.err = err
		}
		return
	}
	type key struct {
		v *Volume
		l int64
	}
	taken := map[key]bool{} // in this batch, not yet mapped
	var chunks []uint32
	for _, r := range batch {
		var need []int64
		for l := r.first; l <= r.last; l++ {
			if r.v.m.get(l) == 0 && !taken[key{r.v, l}] {
				need = append(need, l)
			}
		}
		if len(need) > len(p.free) {
			r.err = noSpace("pool %s: volume %q: write of %d bytes at %d needs %d new chunks, %d free", p.path, r.v.id, r.n, r.off, len(need), len(p.free))
			continue
		}
		r.granted, r.physical = need, p.take(len(need))
		for i, l := range need {
			taken[key{r.v, l}] = true
			p.entries[r.physical[i]] = entry{r.v.serial, uint64(l)}
		}
		chunks = append(chunks, r.physical...)
	}
	if len(chunks) == 0 {
		return
	}
	if err := p.writeChunkBlocks(chunks); err != nil {
		for _, r := range batch {
			if r.err == nil {
				r.err = err
			}
		}
		return
	}
	for _, r := range batch {
		for i, l := range r.granted {
			r.v.m.set(l, r.physical[i]+1)
		}
		r.v.allocated.Add(int64(len(r.granted)))
	}
}
