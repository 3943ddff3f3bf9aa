package rrd

import "fmt"

// FetchResult is what rrdtool fetch returns: Rows[i] holds one value per
// DS for the interval ending at Start+(i+1)*Step; the last ends at End.
type FetchResult struct {
	Start, End int64
	Step       uint64
	DSNames    []string
	Rows       [][]float64
}

// RowReader reads row `row` of archive `rra` into dst (one value per DS).
type RowReader func(rra int, row uint64, dst []float64) error

// chooseRRA picks the archive rrdtool fetch would: among archives of the
// function that reach back to start, the one whose resolution is closest
// to the one asked for; failing that, the one covering most of the
// interval (ties to the closest resolution).
func (s *Spec) chooseRRA(st *State, cf CF, start, end int64, res uint64) (int, error) {
	best, bestPart := -1, -1
	var bestDiff, bestPartDiff uint64
	var bestMatch int64
	for i, a := range s.RRA {
		// One PDP consolidates to itself, so rrdtool lets a 1-step archive
		// answer for every function.
		if a.CF != cf && a.Steps != 1 {
			continue
		}
		rstep := int64(s.Step * a.Steps)
		calEnd := st.LastUp.Sec - mod(st.LastUp.Sec, rstep)
		calStart := calEnd - rstep*int64(a.Rows)
		diff := absDiff(res, uint64(rstep))
		if calStart <= start {
			if best < 0 || diff < bestDiff {
				best, bestDiff = i, diff
			}
			continue
		}
		match := (end - start) - (calStart - start)
		if bestPart < 0 || bestMatch < match || bestMatch == match && diff < bestPartDiff {
			bestPart, bestMatch, bestPartDiff = i, match, diff
		}
	}
	if best >= 0 {
		return best, nil
	}
	if bestPart >= 0 {
		return bestPart, nil
	}
	return -1, fmt.Errorf("%w %s", ErrNoRRA, cf)
}

func absDiff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

// fetch reads the archive rrdtool fetch would choose for cf over
// [start, end] at resolution res (seconds; 0 means the finest).
func (s *Spec) fetch(st *State, cf CF, start, end int64, res uint64, read RowReader) (*FetchResult, error) {
	if start > end {
		return nil, fmt.Errorf("%w: start (%d) should be less than end (%d)", ErrFetch, start, end)
	}
	if res == 0 {
		res = 1
	}
	r, err := s.chooseRRA(st, cf, start, end, res)
	if err != nil {
		return nil, err
	}
	a := s.RRA[r]
	step := int64(s.Step * a.Steps)
	start -= mod(start, step)
	end += step - mod(end, step)
	nds := len(s.DS)
	out := &FetchResult{Start: start, End: end, Step: uint64(step)}
	for _, d := range s.DS {
		out.DSNames = append(out.DSNames, d.Name)
	}
	rraEnd := st.LastUp.Sec - mod(st.LastUp.Sec, step)
	rraStart := rraEnd - step*int64(a.Rows-1)
	n := (end - start) / step
	out.Rows = make([][]float64, n)
	flat := make([]float64, int(n)*nds)
	for i := int64(0); i < n; i++ {
		row := flat[int(i)*nds : int(i+1)*nds]
		out.Rows[i] = row
		t := start + (i+1)*step
		if t < rraStart || t > rraEnd {
			for j := range row {
				row[j] = dnan
			}
			continue
		}
		back := uint64((rraEnd - t) / step)
		idx := (st.CurRow[r] + a.Rows - back) % a.Rows
		if err := read(r, idx, row); err != nil {
			return nil, err
		}
	}
	return out, nil
}
