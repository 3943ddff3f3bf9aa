package rest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/mvstack/mvstack/controller/state"
	"github.com/mvstack/mvstack/controller/volumes"
	"github.com/mvstack/mvstack/node/nodeclient"
)

// Volumes is the data path's controller side (*volumes.Manager): it talks
// to the nodes. Attach, Detach, Repair and Fence run on the leader (the
// API forwards writes there); Status on any replica.
type Volumes interface {
	Attach(ctx context.Context, volume, node, socket string, force bool) (volumes.AttachResult, error)
	Detach(ctx context.Context, volume string) (volumes.AttachResult, error)
	Status(ctx context.Context, volume string) (*nodeclient.VolumeStatus, error)
	Repair(ctx context.Context, volume string) (volumes.RepairResult, error)
	Fence(ctx context.Context, volume, node string) (volumes.FenceResult, error)
}

var _ Volumes = (*volumes.Manager)(nil)

// liveTimeout bounds the node call of GET /api/volumes/{id}.
const liveTimeout = 2 * time.Second

// volumeJSON is a volume with, when it is attached, its state on the node
// that uses it.
type volumeJSON struct {
	state.Volume
	Live      *nodeclient.VolumeStatus `json:"live,omitempty"`
	LiveError string                   `json:"live_error,omitempty"`
}

// fromVolumes maps a volumes error.
func fromVolumes(err error, field string) *apiError {
	switch {
	case errors.Is(err, volumes.ErrNotLeader):
		return unavailable("%v", err)
	case errors.Is(err, volumes.ErrNodeFailed):
		return &apiError{Status: http.StatusBadGateway, Code: "node_failed", Message: err.Error()}
	}
	return fromStorage(err, field)
}

func (h *Handler) volumes() (Volumes, *apiError) {
	if h.cfg.Volumes == nil {
		return nil, &apiError{Status: http.StatusNotImplemented, Code: "no_nodes",
			Message: "this controller does not talk to nodes (mvcontroller serve without --iface): volumes cannot be attached, repaired or fenced"}
	}
	return h.cfg.Volumes, nil
}

// decodeOptional reads a JSON object into v; an empty body is an empty
// object.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) *apiError {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return decodeError(err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return decode(w, r, v)
}

func (h *Handler) attachVolume(w http.ResponseWriter, r *http.Request) *apiError {
	vs, e := h.volumes()
	if e != nil {
		return e
	}
	var req struct {
		Node   *string `json:"node"`
		Socket string  `json:"socket"`
		Force  bool    `json:"force"`
	}
	if e := decode(w, r, &req); e != nil {
		return e
	}
	if req.Node == nil {
		return invalid("node", "node is required: the node that uses the volume")
	}
	res, err := vs.Attach(r.Context(), r.PathValue("id"), *req.Node, req.Socket, req.Force)
	if err != nil {
		return fromVolumes(err, "node")
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (h *Handler) detachVolume(w http.ResponseWriter, r *http.Request) *apiError {
	return h.bodilessVolumeCall(w, r, http.StatusOK, func(vs Volumes, id string) (any, error) { return vs.Detach(r.Context(), id) })
}

func (h *Handler) repairVolume(w http.ResponseWriter, r *http.Request) *apiError {
	return h.bodilessVolumeCall(w, r, http.StatusAccepted, func(vs Volumes, id string) (any, error) { return vs.Repair(r.Context(), id) })
}

// bodilessVolumeCall serves a volume route whose body is empty (or an
// empty object): fn's answer with status, or its error mapped.
func (h *Handler) bodilessVolumeCall(w http.ResponseWriter, r *http.Request, status int, fn func(vs Volumes, id string) (any, error)) *apiError {
	vs, e := h.volumes()
	if e != nil {
		return e
	}
	var req struct{}
	if e := decodeOptional(w, r, &req); e != nil {
		return e
	}
	res, err := fn(vs, r.PathValue("id"))
	if err != nil {
		return fromVolumes(err, "")
	}
	writeJSON(w, status, res)
	return nil
}

func (h *Handler) fenceVolume(w http.ResponseWriter, r *http.Request) *apiError {
	vs, e := h.volumes()
	if e != nil {
		return e
	}
	var req struct {
		Node *string `json:"node"`
	}
	if e := decode(w, r, &req); e != nil {
		return e
	}
	if req.Node == nil {
		return invalid("node", "node is required: the node to fence off the volume")
	}
	res, err := vs.Fence(r.Context(), r.PathValue("id"), *req.Node)
	if err != nil {
		return fromVolumes(err, "node")
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// live adds the attached node's view of v.
func (h *Handler) live(ctx context.Context, v state.Volume) volumeJSON {
	out := volumeJSON{Volume: v}
	if v.AttachedTo == "" || h.cfg.Volumes == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, liveTimeout)
	defer cancel()
	st, err := h.cfg.Volumes.Status(ctx, v.ID)
	if err != nil {
		out.LiveError = err.Error()
		return out
	}
	out.Live = st
	return out
}
