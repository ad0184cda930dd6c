package bootstatus

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestHandler(t *testing.T) {
	dir := t.TempDir()
	booted := filepath.Join(dir, "booted.json")
	r := &Recorder{Path: booted}
	for _, err := range []error{r.Start(StepConfig), r.Done("wrote it"), r.Start(StepExec), r.Done("exec run")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	failed := filepath.Join(dir, "failed.json")
	r = &Recorder{Path: failed}
	if err := errors.Join(r.Start(StepVolume), r.Fail(errors.New("volume not attached"))); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.json")
	if err := os.WriteFile(corrupt, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, path, method string
		wantCode           int
		wantStep           string
	}{
		{"booted", booted, http.MethodGet, http.StatusOK, StepExec},
		{"failed step", failed, http.MethodGet, http.StatusServiceUnavailable, StepVolume},
		{"head", booted, http.MethodHead, http.StatusOK, ""},
		{"no status file", filepath.Join(dir, "absent.json"), http.MethodGet, http.StatusNotFound, ""},
		{"not booted by the agent", "", http.MethodGet, http.StatusNotFound, ""},
		{"corrupt", corrupt, http.MethodGet, http.StatusInternalServerError, ""},
		{"post", booted, http.MethodPost, http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Handler(tt.path).ServeHTTP(rec, httptest.NewRequest(tt.method, "/bootz", nil))
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantStep == "" {
				return
			}
			var st Status
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
				t.Fatalf("body is not a status: %v: %s", err, rec.Body)
			}
			if st.Step != tt.wantStep {
				t.Errorf("step = %q, want %q", st.Step, tt.wantStep)
			}
		})
	}
}
