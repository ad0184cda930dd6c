package localcloud

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/ec2"
)

// faultPrefix is the non-AWS path of the emulator's own API (no SigV4; loopback only).
const faultPrefix = "/_localcloud/"

// faultAPI serves:
//
//	GET  /_localcloud/health                      {"status":"ok"}
//	GET  /_localcloud/instances                   every instance with pid, IMDS endpoint, console log
//	POST /_localcloud/instances/<id>/kill         SIGKILL; the instance ends stopped
//	POST /_localcloud/instances/<id>/crash        SIGKILL to the program only; it is restarted
//	POST /_localcloud/az/<zone>/down              kill every instance in the zone; launches there fail
//	POST /_localcloud/az/<zone>/up                end the outage; its instances boot again
//	POST /_localcloud/images                      {"binary","version"} or {"binary","name","architecture","args","tags"}
func (c *Cloud) faultAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_localcloud/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "endpoint": c.Endpoint(), "region": c.Region()})
	})
	mux.HandleFunc("GET /_localcloud/instances", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"instances": c.ec2.Instances()})
	})
	mux.HandleFunc("POST /_localcloud/instances/{id}/kill", func(w http.ResponseWriter, r *http.Request) {
		if err := c.KillInstance(r.PathValue("id")); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"instanceId": r.PathValue("id"), "state": "stopped"})
	})
	mux.HandleFunc("POST /_localcloud/instances/{id}/crash", func(w http.ResponseWriter, r *http.Request) {
		if err := c.CrashInstance(r.PathValue("id")); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"instanceId": r.PathValue("id"), "state": "running"})
	})
	mux.HandleFunc("POST /_localcloud/az/{zone}/{action}", func(w http.ResponseWriter, r *http.Request) {
		var ids []string
		var err error
		switch r.PathValue("action") {
		case "down":
			ids, err = c.ZoneDown(r.PathValue("zone"))
		case "up":
			ids, err = c.ZoneUp(r.PathValue("zone"))
		default:
			http.NotFound(w, r)
			return
		}
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"availabilityZone": r.PathValue("zone"), "instances": nonNil(ids)})
	})
	mux.HandleFunc("POST /_localcloud/images", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Binary       string            `json:"binary"`
			Version      string            `json:"version"`
			Name         string            `json:"name"`
			Architecture string            `json:"architecture"`
			Args         []string          `json:"args"`
			Tags         map[string]string `json:"tags"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "decoding request: " + err.Error()})
			return
		}
		var spec ec2.ImageSpec
		switch {
		case in.Version != "":
			spec = ec2.BrokerImageSpec(in.Binary, in.Version, in.Architecture)
		case in.Name != "":
			spec = ec2.ImageSpec{Name: in.Name, Architecture: in.Architecture, Binary: in.Binary, Args: in.Args, Tags: in.Tags}
		default:
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "an image needs a version (broker image) or a name"})
			return
		}
		id, err := c.ec2.RegisterImage(spec)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"imageId": id, "name": spec.Name})
	})
	return mux
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var e *awsapi.Error
	if errors.As(err, &e) {
		status = http.StatusBadRequest
		if strings.HasSuffix(e.Code, ".NotFound") {
			status = http.StatusNotFound
		} else if strings.HasPrefix(e.Code, "Incorrect") {
			status = http.StatusConflict
		}
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
