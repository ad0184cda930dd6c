package awsapi

import (
	"log/slog"
	"testing"
	"time"
)

func TestEnvWithDefaults(t *testing.T) {
	got := Env{}.WithDefaults()
	if got.Account != DefaultAccount || got.Region != DefaultRegion || got.Logger == nil || got.Now == nil {
		t.Errorf("Env{}.WithDefaults() = %+v, want every default set", got)
	}
	if got.StateDir != "" || got.Credentials != nil {
		t.Errorf("Env{}.WithDefaults() invented a state dir or credentials: %+v", got)
	}

	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	logger := slog.New(slog.DiscardHandler)
	set := Env{Account: "123456789012", Region: "eu-west-1", StateDir: "/s", Logger: logger, Now: func() time.Time { return fixed }}
	got = set.WithDefaults()
	if got.Account != "123456789012" || got.Region != "eu-west-1" || got.StateDir != "/s" || got.Logger != logger || !got.Now().Equal(fixed) {
		t.Errorf("WithDefaults changed fields that were set: %+v", got)
	}
}
