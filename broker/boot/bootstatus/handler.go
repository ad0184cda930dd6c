package bootstatus

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
)

// Handler serves the status file at path as JSON, for the broker's health
// endpoint (for example at /bootz beside /healthz):
//
//	200 with the status when the boot finished (step exec, state done);
//	503 with the status while booting or after a failed step;
//	404 when there is no status file (the broker was started without the
//	    boot agent, e.g. `tributary-broker run` by hand);
//	500 when the file cannot be read or parsed.
//
// The file is read on every request: it is small, and the broker does not
// need to know when the agent last wrote it.
func Handler(path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if path == "" {
			http.Error(w, "no boot status: the broker was not started by the boot agent", http.StatusNotFound)
			return
		}
		st, err := Read(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			http.Error(w, "no boot status at "+path, http.StatusNotFound)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		code := http.StatusOK
		if st.Step != StepExec || st.State != StateDone {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		if r.Method == http.MethodHead {
			return
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st) // the client went away; nothing to do
	})
}
