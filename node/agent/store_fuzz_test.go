package agent

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The replicas file decodes whatever it holds without panicking, and what
// it decodes is saved and read back the same.
func FuzzLoadReplicas(f *testing.F) {
	f.Add([]byte(`[{"volume":"1","name":"db","disk":"n1-drive0.img","shelf":1000,"slot":0,"size_mb":256,"thick":false,"epoch":3,"in_sync":true}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"volume":"2","disk":"a.img","shelf":65534,"slot":254,"size_mb":1}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "replicas.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		s := &store{dir: dir}
		got, err := s.loadReplicas()
		if err != nil {
			return
		}
		if err := s.saveReplicas(got); err != nil {
			t.Fatal(err)
		}
		again, err := s.loadReplicas()
		if err != nil {
			t.Fatalf("reading back what was saved: %v", err)
		}
		if len(got) == 0 && len(again) == 0 {
			return
		}
		if !reflect.DeepEqual(got, again) {
			t.Fatalf("round trip changed the replicas:\n%+v\n%+v", got, again)
		}
	})
}
