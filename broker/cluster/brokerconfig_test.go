package cluster

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/tributary/tributary/broker/config"
)

func TestConfigFromBroker(t *testing.T) {
	base := config.Config{NodeID: 2, Rack: "b", ListenAddr: "127.0.0.12:9092", AdvertisedAddr: "127.0.0.12:9092", DataDir: "/data", ClusterID: "c1"}
	if _, err := ConfigFromBroker(&base, nil); !errors.Is(err, ErrNotClustered) {
		t.Fatalf("without voters: %v", err)
	}
	tests := []struct {
		name, voters, bind string
	}{
		{"voter binds its entry", "1@127.0.0.11:9095,2@127.0.0.12:9095,3@127.0.0.13:9095", "127.0.0.12:9095"},
		{"non-voter uses the voters' port", "1@127.0.0.11:19095,3@127.0.0.13:19095", "127.0.0.12:19095"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.ControllerQuorumVoters = tt.voters
			got, err := ConfigFromBroker(&c, slog.Default())
			if err != nil {
				t.Fatal(err)
			}
			if got.Bind != tt.bind || got.Advertise != tt.bind || got.NodeID != 2 || got.Rack != "b" || got.ClusterID != "c1" ||
				got.Dir != filepath.Join("/data", ControllerDirName) || len(got.Listeners) != 1 || got.Listeners[0].Port != 9092 || got.Listeners[0].Host != "127.0.0.12" {
				t.Fatalf("got %+v", got)
			}
		})
	}
	c := base
	c.ControllerQuorumVoters = "bogus"
	if _, err := ConfigFromBroker(&c, nil); err == nil {
		t.Fatal("bad voters accepted")
	}
}
