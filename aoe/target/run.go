package target

import (
	"slices"

	"github.com/mvstack/mvstack/aoe"
)

// maxRunSectors bounds the sectors of requests joined into one backend
// call: 1 MiB.
const maxRunSectors = 2048

// dispatchRuns hands the disk requests of one read batch to the workers.
// Requests that read (or write) an export's sectors one after another, as
// an initiator splits a large I/O into frames, are joined into one job:
// the worker then makes one backend call for all of them. With O_DIRECT
// nothing below us joins them, and a disk that counts operations would
// otherwise see one per frame. With keep, the first job is returned
// instead of dispatched (ok is false when there is none).
func (s *Server) dispatchRuns(jobs []job, keep bool) (first job, ok bool) {
	for i := 0; i < len(jobs); {
		k := i + 1
		if joinable(&jobs[i]) {
			sectors := uint64(jobs[i].f.ATA.SectorCount)
			for k < len(jobs) && follows(&jobs[k-1], &jobs[k]) && sectors+uint64(jobs[k].f.ATA.SectorCount) <= maxRunSectors {
				sectors += uint64(jobs[k].f.ATA.SectorCount)
				k++
			}
		}
		j := jobs[i]
		if k > i+1 {
			j.run = slices.Clone(jobs[i+1 : k])
		}
		if keep && !ok {
			first, ok = j, true
		} else {
			s.dispatch(j)
		}
		i = k
	}
	return first, ok
}

// joinable reports whether j may start a run: a read, or a write to a
// writable export, inside the export.
func joinable(j *job) bool {
	if !isRead(&j.f) && (!isWrite(&j.f) || j.e.cfg.ReadOnly) {
		return false
	}
	return j.e.inRange(j.f.ATA.Sector(), uint64(j.f.ATA.SectorCount))
}

// follows reports whether b goes on where a ends: the same export, the same
// command kind, the next sector, and inside the export.
func follows(a, b *job) bool {
	return a.e == b.e && isRead(&a.f) == isRead(&b.f) && isWrite(&a.f) == isWrite(&b.f) &&
		b.f.ATA.Sector() == a.f.ATA.Sector()+uint64(a.f.ATA.SectorCount) &&
		b.e.inRange(b.f.ATA.Sector(), uint64(b.f.ATA.SectorCount))
}

// doRun serves a job and the run of jobs that follow it with one backend
// call. If any of them is stale, or the call fails, each is served alone
// instead, so that each gets its own answer.
func (s *Server) doRun(first job) {
	jobs := make([]job, 0, 1+len(first.run))
	jobs = append(jobs, first)
	jobs = append(jobs, first.run...)
	jobs[0].run = nil
	e := first.e
	for i := range jobs {
		if j := &jobs[i]; j.gated && !e.fence.still(j.src, j.epoch) {
			s.alone(jobs)
			return
		}
	}
	size := 0
	for i := range jobs {
		size += int(jobs[i].f.ATA.SectorCount) * aoe.SectorSize
	}
	bp := s.runBufs.get(size)
	defer s.runBufs.put(bp)
	buf := (*bp)[:size]
	off := int64(first.f.ATA.Sector()) * aoe.SectorSize
	write := isWrite(&first.f)
	var err error
	if write {
		pos := 0
		for i := range jobs {
			n := int(jobs[i].f.ATA.SectorCount) * aoe.SectorSize
			pos += copy(buf[pos:pos+n], jobs[i].f.Data[:n])
		}
		err = e.write(buf, off)
	} else {
		err = e.read(buf, off)
	}
	if err != nil {
		s.alone(jobs)
		return
	}
	e.joined.Add(uint64(len(jobs)))
	pos := 0
	for i := range jobs {
		j := &jobs[i]
		n := int(j.f.ATA.SectorCount) * aoe.SectorSize
		rep := aoe.Frame{Header: j.f.Header, ATA: succeeded(j.f.ATA)}
		rep.Flags = aoe.FlagResponse
		rep.Shelf, rep.Slot = e.cfg.Shelf, e.cfg.Slot
		if write {
			e.countWrite(n)
		} else {
			data := j.buf[aoe.HeaderLen+aoe.ATAHeaderLen:]
			rep.Data = data[:copy(data, buf[pos:pos+n])]
			e.countRead(n)
		}
		pos += n
		j.reply = s.marshalReply(&rep, j.buf)
	}
	s.reply(jobs)
}

// alone serves each job by itself.
func (s *Server) alone(jobs []job) {
	for _, j := range jobs {
		s.doATA(j)
	}
}
