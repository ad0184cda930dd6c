package server

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A CreateTopics whose metadata quorum is gone (the active controller's
// two followers stopped) is answered by its timeout_ms with
// REQUEST_TIMED_OUT, a retriable code, and so is a second one sent
// meanwhile. Before, the server waited its own 15 s bound on metadata
// changes whatever the request's timeout, and the second waited behind
// the first.
func TestCreateTopicsAnsweredWithinItsTimeoutWithoutAQuorum(t *testing.T) {
	c := startInProcessCluster(t)
	ctl := activeControllerAlone(t, c)

	const timeout = 2 * time.Second
	create := func(name string) <-chan timedAnswer {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Version, req.TimeoutMillis = 7, int32(timeout.Milliseconds())
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 3
		req.Topics = append(req.Topics, rt)
		return sendTimed(t, ctl, req, func(r *kmsg.CreateTopicsResponse) []int16 {
			return listCodes(r.Topics, func(x kmsg.CreateTopicsResponseTopic) int16 { return x.ErrorCode })
		})
	}
	first := create("first")
	time.Sleep(300 * time.Millisecond)
	second := create("second")
	limit := timeout + 1500*time.Millisecond
	expectAnswered(t, map[string]<-chan timedAnswer{"creating first": first, "creating second": second}, nil,
		map[string]time.Duration{"creating first": limit, "creating second": limit})
}

// The same for CreatePartitions: answered by its timeout_ms with
// REQUEST_TIMED_OUT. Before, it waited the broker's 15 s and answered
// KAFKA_STORAGE_ERROR.
func TestCreatePartitionsAnsweredWithinItsTimeoutWithoutAQuorum(t *testing.T) {
	c := startInProcessCluster(t)
	c.createReplicated("grow", 1)
	ctl := activeControllerAlone(t, c)

	const timeout = 2 * time.Second
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.Version, req.TimeoutMillis = 3, int32(timeout.Milliseconds())
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = "grow", 2
	req.Topics = append(req.Topics, rt)
	start := time.Now()
	resp := roundTrip[*kmsg.CreatePartitionsResponse](t, ctl, req)
	took := time.Since(start)
	if code := resp.Topics[0].ErrorCode; code != kerr.RequestTimedOut.Code {
		t.Errorf("adding a partition: %v, want REQUEST_TIMED_OUT", kerr.ErrorForCode(code))
	}
	if took > timeout+1500*time.Millisecond {
		t.Errorf("adding a partition answered after %v, its timeout_ms %v", took, timeout)
	}
	t.Logf("answered after %v", took.Round(time.Millisecond))
}

// activeControllerAlone waits for c's active controller and stops the
// other two nodes, leaving it without a quorum.
func activeControllerAlone(t *testing.T, c *inProcessCluster) *Server {
	t.Helper()
	var ctl *Server
	waitCluster(t, 10*time.Second, func() error {
		for _, s := range c.servers {
			if s.node.Controller.IsActive() {
				ctl = s
				return nil
			}
		}
		return errors.New("no active controller")
	})
	for _, s := range c.servers {
		if s != ctl {
			s.node.Close()
		}
	}
	return ctl
}
