package rest

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/mvstack/mvstack/controller/state"
)

// datastoreJSON is a datastore with its capacity.
type datastoreJSON struct {
	state.Datastore
	Usage state.DatastoreUsage `json:"usage"`
}

func viewDatastore(s *state.State, ds state.Datastore) datastoreJSON {
	return datastoreJSON{Datastore: ds, Usage: s.Usage(&ds)}
}

// fromStorage maps an Apply error, naming the field the state named.
func fromStorage(err error, field string) *apiError {
	var fe *state.FieldError
	if errors.As(err, &fe) {
		field = fe.Field
	}
	return fromApply(err, field)
}

func (h *Handler) listDisks(w http.ResponseWriter, r *http.Request) *apiError {
	q := r.URL.Query()
	node, ds, st := q.Get("node"), q.Get("datastore"), q.Get("state")
	switch st {
	case "", state.DiskAvailable, state.DiskInUse, state.DiskMissing:
	default:
		return badRequest("state", "state %q is not one of available, in_use, missing", st)
	}
	out := []state.DiskInfo{}
	h.cfg.Store.Read(func(s *state.State) {
		for _, d := range s.Disks() {
			if (node == "" || d.Node == node) && (ds == "" || d.Datastore == ds) && (st == "" || d.State == st) {
				out = append(out, d)
			}
		}
	})
	writeJSON(w, http.StatusOK, list[state.DiskInfo]{Items: out})
	return nil
}

type datastoreRequest struct {
	Name              *string  `json:"name"`
	Disks             []string `json:"disks"`
	Replicas          *int     `json:"replicas"`
	Overcommit        *float64 `json:"overcommit"`
	Thick             bool     `json:"thick"`
	DBMetadata        bool     `json:"db_metadata"`
	TriggerRepair     *string  `json:"trigger_repair"`
	PeriodicRepairSec int      `json:"periodic_repair_sec"`
	NumOfRepairs      *int     `json:"num_of_repairs"`
	FTUnit            string   `json:"ft_unit"`
}

func (h *Handler) createDatastore(w http.ResponseWriter, r *http.Request) *apiError {
	var req datastoreRequest
	if e := decode(w, r, &req); e != nil {
		return e
	}
	c := state.CreateDatastore{At: now(), Disks: req.Disks, Replicas: 1, Overcommit: 1, Thick: req.Thick, DBMetadata: req.DBMetadata,
		TriggerRepair: state.RepairManual, PeriodicRepairSec: req.PeriodicRepairSec, NumOfRepairs: 1, FTUnit: req.FTUnit}
	if req.Name != nil {
		c.Name = *req.Name
	}
	if req.Replicas != nil {
		c.Replicas = *req.Replicas
	}
	if req.Overcommit != nil {
		c.Overcommit = *req.Overcommit
	}
	if req.TriggerRepair != nil {
		c.TriggerRepair = *req.TriggerRepair
	}
	if req.NumOfRepairs != nil {
		c.NumOfRepairs = *req.NumOfRepairs
	}
	res, err := h.cfg.Store.Apply(r.Context(), c)
	if err != nil {
		return fromStorage(err, "")
	}
	var out datastoreJSON
	h.cfg.Store.Read(func(s *state.State) { out = viewDatastore(s, res.(state.Datastore)) })
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (h *Handler) listDatastores(w http.ResponseWriter, r *http.Request) *apiError {
	out := []datastoreJSON{}
	h.cfg.Store.Read(func(s *state.State) {
		for _, ds := range s.SortedDatastores() {
			out = append(out, viewDatastore(s, *ds))
		}
	})
	writeJSON(w, http.StatusOK, list[datastoreJSON]{Items: out})
	return nil
}

func (h *Handler) getDatastore(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	var out *datastoreJSON
	h.cfg.Store.Read(func(s *state.State) {
		if ds, ok := s.Datastores[id]; ok {
			v := viewDatastore(s, *ds)
			out = &v
		}
	})
	if out == nil {
		return notFound("no datastore %q", id)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) deleteDatastore(w http.ResponseWriter, r *http.Request) *apiError {
	if _, err := h.cfg.Store.Apply(r.Context(), state.DeleteDatastore{At: now(), ID: r.PathValue("id")}); err != nil {
		return fromStorage(err, "")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) addDisks(w http.ResponseWriter, r *http.Request) *apiError {
	var req struct {
		Disks []string `json:"disks"`
	}
	if e := decode(w, r, &req); e != nil {
		return e
	}
	return h.changeDisks(w, r, state.AddDisks{At: now(), Datastore: r.PathValue("id"), Disks: req.Disks})
}

func (h *Handler) removeDisks(w http.ResponseWriter, r *http.Request) *apiError {
	v := r.URL.Query().Get("disks")
	var ids []string
	if v != "" {
		ids = strings.Split(v, ",")
	}
	return h.changeDisks(w, r, state.RemoveDisks{At: now(), Datastore: r.PathValue("id"), Disks: ids})
}

func (h *Handler) changeDisks(w http.ResponseWriter, r *http.Request, c state.Command) *apiError {
	res, err := h.cfg.Store.Apply(r.Context(), c)
	if err != nil {
		return fromStorage(err, "disks")
	}
	var out datastoreJSON
	h.cfg.Store.Read(func(s *state.State) { out = viewDatastore(s, res.(state.Datastore)) })
	writeJSON(w, http.StatusOK, out)
	return nil
}

type volumeRequest struct {
	Name      *string `json:"name"`
	Datastore *string `json:"datastore"`
	SizeMB    *uint64 `json:"size_mb"`
	Thick     bool    `json:"thick"`
	FTUnit    string  `json:"ft_unit"`
}

func (h *Handler) createVolume(w http.ResponseWriter, r *http.Request) *apiError {
	var req volumeRequest
	if e := decode(w, r, &req); e != nil {
		return e
	}
	if req.Datastore == nil {
		return invalid("datastore", "datastore is required")
	}
	if req.SizeMB == nil {
		return invalid("size_mb", "size_mb is required")
	}
	c := state.CreateVolume{At: now(), Datastore: *req.Datastore, SizeMB: *req.SizeMB, Thick: req.Thick, FTUnit: req.FTUnit}
	if req.Name != nil {
		c.Name = *req.Name
	}
	res, err := h.cfg.Store.Apply(r.Context(), c)
	if err != nil {
		return fromStorage(err, "")
	}
	writeJSON(w, http.StatusCreated, res.(state.Volume))
	return nil
}

func (h *Handler) listVolumes(w http.ResponseWriter, r *http.Request) *apiError {
	q := r.URL.Query()
	ds, node := q.Get("datastore"), q.Get("node")
	out := []state.Volume{}
	h.cfg.Store.Read(func(s *state.State) {
		for _, v := range s.SortedVolumes() {
			if (ds == "" || v.Datastore == ds) && (node == "" || slices.ContainsFunc(v.Replicas, func(r state.VolumeReplica) bool { return r.Node == node })) {
				out = append(out, *v)
			}
		}
	})
	writeJSON(w, http.StatusOK, list[state.Volume]{Items: out})
	return nil
}

func (h *Handler) getVolume(w http.ResponseWriter, r *http.Request) *apiError {
	id := r.PathValue("id")
	var v *state.Volume
	h.cfg.Store.Read(func(s *state.State) { v = s.Volumes[id] })
	if v == nil {
		return notFound("no volume %q", id)
	}
	writeJSON(w, http.StatusOK, h.live(r.Context(), *v))
	return nil
}

func (h *Handler) resizeVolume(w http.ResponseWriter, r *http.Request) *apiError {
	var req struct {
		SizeMB *uint64 `json:"size_mb"`
	}
	if e := decode(w, r, &req); e != nil {
		return e
	}
	if req.SizeMB == nil {
		return invalid("size_mb", "size_mb is required")
	}
	res, err := h.cfg.Store.Apply(r.Context(), state.ResizeVolume{At: now(), ID: r.PathValue("id"), SizeMB: *req.SizeMB})
	if err != nil {
		return fromStorage(err, "size_mb")
	}
	writeJSON(w, http.StatusOK, res.(state.Volume))
	return nil
}

func (h *Handler) deleteVolume(w http.ResponseWriter, r *http.Request) *apiError {
	if _, err := h.cfg.Store.Apply(r.Context(), state.DeleteVolume{At: now(), ID: r.PathValue("id")}); err != nil {
		return fromStorage(err, "")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
