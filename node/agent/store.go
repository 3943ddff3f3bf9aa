package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mvstack/mvstack/node/domain"
	"github.com/mvstack/mvstack/node/nodeclient"
)

// store keeps what must survive a daemon restart in the state directory:
// "term" (the highest controller term, decimal), "domains.json" (the
// specs of the domains the node should run) and "replicas.json" (the
// volume replicas it serves). A store without a directory
// keeps nothing.
type store struct{ dir string }

func openStore(dir string) (*store, error) {
	if dir == "" {
		return &store{}, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: state dir: %w", err)
	}
	return &store{dir: dir}, nil
}

func (s *store) load() (map[int]domain.Spec, uint64, error) {
	if s.dir == "" {
		return nil, 0, nil
	}
	var term uint64
	b, err := os.ReadFile(filepath.Join(s.dir, "term"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, 0, fmt.Errorf("agent: state: %w", err)
	default:
		if term, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return nil, 0, fmt.Errorf("agent: state file %s: %w", filepath.Join(s.dir, "term"), err)
		}
	}
	var want []domain.Spec
	b, err = os.ReadFile(filepath.Join(s.dir, "domains.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, 0, fmt.Errorf("agent: state: %w", err)
	default:
		if err := json.Unmarshal(b, &want); err != nil {
			return nil, 0, fmt.Errorf("agent: state file %s: %w", filepath.Join(s.dir, "domains.json"), err)
		}
	}
	out := make(map[int]domain.Spec, len(want))
	for _, sp := range want {
		out[sp.ID] = sp
	}
	return out, term, nil
}

func (s *store) saveTerm(term uint64) error {
	if s.dir == "" {
		return nil
	}
	return writeAtomic(filepath.Join(s.dir, "term"), []byte(strconv.FormatUint(term, 10)+"\n"))
}

func (s *store) saveWant(want map[int]domain.Spec) error {
	if s.dir == "" {
		return nil
	}
	list := make([]domain.Spec, 0, len(want))
	for _, sp := range want {
		list = append(list, sp)
	}
	slices.SortFunc(list, func(a, b domain.Spec) int { return a.ID - b.ID })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.dir, "domains.json"), b)
}

// writeAtomic replaces path with data: a temporary file, fsync, rename.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadReplicas reads "replicas.json": the replicas the controller last
// assigned, so a restarted node serves them again before it hears from the
// controller.
func (s *store) loadReplicas() ([]nodeclient.ReplicaAssignment, error) {
	if s.dir == "" {
		return nil, nil
	}
	path := filepath.Join(s.dir, "replicas.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: state: %w", err)
	}
	var out []nodeclient.ReplicaAssignment
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("agent: state file %s: %w", path, err)
	}
	return out, nil
}

func (s *store) saveReplicas(list []nodeclient.ReplicaAssignment) error {
	if s.dir == "" {
		return nil
	}
	if list == nil {
		list = []nodeclient.ReplicaAssignment{}
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.dir, "replicas.json"), b)
}
