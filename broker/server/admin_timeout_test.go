package server

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// timedAnswer is what a request sent in the background got: the error
// codes of its response and how long it took.
type timedAnswer struct {
	codes []int16
	took  time.Duration
}

// sendTimed sends req to s in the background; codes picks the error codes
// out of the response.
func sendTimed[R kmsg.Response](t *testing.T, s *Server, req kmsg.Request, codes func(R) []int16) <-chan timedAnswer {
	out := make(chan timedAnswer, 1)
	go func() {
		start := time.Now()
		resp := roundTrip[R](t, s, req)
		out <- timedAnswer{codes(resp), time.Since(start)}
	}()
	return out
}

// expectAnswered waits for each answer and checks that every code of it is
// the one want names (REQUEST_TIMED_OUT where it names none) and that it
// came within limit.
func expectAnswered(t *testing.T, answers map[string]<-chan timedAnswer, want map[string]int16, limit map[string]time.Duration) {
	t.Helper()
	for name, ch := range answers {
		select {
		case a := <-ch:
			if len(a.codes) == 0 {
				t.Errorf("%s: no result in the response", name)
			}
			w, ok := want[name]
			if !ok {
				w = kerr.RequestTimedOut.Code
			}
			for _, c := range a.codes {
				if c != w {
					t.Errorf("%s: %v, want %v", name, kerr.ErrorForCode(c), kerr.ErrorForCode(w))
				}
			}
			if a.took > limit[name] {
				t.Errorf("%s answered after %v, want within %v", name, a.took.Round(time.Millisecond), limit[name])
			}
			t.Logf("%s: answered after %v", name, a.took.Round(time.Millisecond))
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no answer within 30 s", name)
		}
	}
}

// A DeleteTopics whose metadata quorum is gone is answered by its
// timeout_ms with REQUEST_TIMED_OUT, and a CreateTopics sent meanwhile,
// with a shorter timeout, by its own: it gives up waiting for the broker's
// admin turn, which the deletion holds. Before, the deletion waited the
// broker's 15 s whatever its timeout_ms, and the creation waited for the
// turn until then (past the test connection's 10 s read deadline).
func TestDeleteTopicsAndAQueuedCreateAnsweredWithinTheirTimeoutsWithoutAQuorum(t *testing.T) {
	c := startInProcessCluster(t)
	c.createReplicated("doomed", 1)
	ctl := activeControllerAlone(t, c)

	const deleteTimeout, createTimeout = 4 * time.Second, time.Second
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.Version, del.TimeoutMillis = 6, int32(deleteTimeout.Milliseconds())
	name := "doomed"
	del.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: &name}}
	deleted := sendTimed(t, ctl, del, func(r *kmsg.DeleteTopicsResponse) []int16 {
		return listCodes(r.Topics, func(x kmsg.DeleteTopicsResponseTopic) int16 { return x.ErrorCode })
	})
	time.Sleep(300 * time.Millisecond)
	create := kmsg.NewPtrCreateTopicsRequest()
	create.Version, create.TimeoutMillis = 7, int32(createTimeout.Milliseconds())
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "queued", 1, 1
	create.Topics = append(create.Topics, rt)
	created := sendTimed(t, ctl, create, func(r *kmsg.CreateTopicsResponse) []int16 {
		return listCodes(r.Topics, func(x kmsg.CreateTopicsResponseTopic) int16 { return x.ErrorCode })
	})
	const slack = 1500 * time.Millisecond
	expectAnswered(t, map[string]<-chan timedAnswer{"deleting a topic": deleted, "creating a topic behind it": created}, nil,
		map[string]time.Duration{"deleting a topic": deleteTimeout + slack, "creating a topic behind it": createTimeout + slack})
}

// The admin requests that carry no timeout (configs, ACLs, quotas, SCRAM
// credentials) are answered REQUEST_TIMED_OUT by the broker's bound for
// them, below franz-go's 10 s read deadline, when the metadata quorum is
// gone; sent together, none waits for another's bound. Before, each
// waited the broker's 15 s (past the test connection's 10 s read
// deadline), and the config changes answered KAFKA_STORAGE_ERROR.
func TestUntimedAdminRequestsAnsweredByTheBrokersBoundWithoutAQuorum(t *testing.T) {
	c := startInProcessCluster(t)
	c.createReplicated("configured", 1)
	ctl := activeControllerAlone(t, c)

	retention := "3600000"
	incr := kmsg.NewPtrIncrementalAlterConfigsRequest()
	incr.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{
		ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "configured",
		Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Op: kmsg.IncrementalAlterConfigOpSet, Value: &retention}},
	}}
	legacy := kmsg.NewPtrAlterConfigsRequest()
	legacy.Resources = []kmsg.AlterConfigsRequestResource{{
		ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "",
		Configs: []kmsg.AlterConfigsRequestResourceConfig{{Name: "log.retention.ms", Value: &retention}},
	}}
	createACL := kmsg.NewPtrCreateACLsRequest()
	createACL.Version = 3
	createACL.Creations = []kmsg.CreateACLsRequestCreation{{
		ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "configured", ResourcePatternType: kmsg.ACLResourcePatternTypeLiteral,
		Principal: "User:alice", Host: "*", Operation: kmsg.ACLOperationRead, PermissionType: kmsg.ACLPermissionTypeAllow,
	}}
	deleteACL := kmsg.NewPtrDeleteACLsRequest()
	deleteACL.Version = 3
	deleteACL.Filters = []kmsg.DeleteACLsRequestFilter{{
		ResourceType: kmsg.ACLResourceTypeAny, ResourcePatternType: kmsg.ACLResourcePatternTypeAny,
		Operation: kmsg.ACLOperationAny, PermissionType: kmsg.ACLPermissionTypeAny,
	}}
	quota := kmsg.NewPtrAlterClientQuotasRequest()
	user := "alice"
	quota.Entries = []kmsg.AlterClientQuotasRequestEntry{{
		Entity: []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "user", Name: &user}},
		Ops:    []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1 << 20}},
	}}
	scramReq := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	scramReq.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{{
		Name: "alice", Mechanism: 1, Iterations: 4096, Salt: []byte("0123456789abcdef"), SaltedPassword: make([]byte, 32),
	}}

	answers := map[string]<-chan timedAnswer{
		"IncrementalAlterConfigs (topic)": sendTimed(t, ctl, incr, func(r *kmsg.IncrementalAlterConfigsResponse) []int16 {
			return listCodes(r.Resources, func(x kmsg.IncrementalAlterConfigsResponseResource) int16 { return x.ErrorCode })
		}),
		"AlterConfigs (cluster default)": sendTimed(t, ctl, legacy, func(r *kmsg.AlterConfigsResponse) []int16 {
			return listCodes(r.Resources, func(x kmsg.AlterConfigsResponseResource) int16 { return x.ErrorCode })
		}),
		"CreateAcls": sendTimed(t, ctl, createACL, func(r *kmsg.CreateACLsResponse) []int16 {
			return listCodes(r.Results, func(x kmsg.CreateACLsResponseResult) int16 { return x.ErrorCode })
		}),
		"DeleteAcls": sendTimed(t, ctl, deleteACL, func(r *kmsg.DeleteACLsResponse) []int16 {
			return listCodes(r.Results, func(x kmsg.DeleteACLsResponseResult) int16 { return x.ErrorCode })
		}),
		"AlterClientQuotas": sendTimed(t, ctl, quota, func(r *kmsg.AlterClientQuotasResponse) []int16 {
			return listCodes(r.Entries, func(x kmsg.AlterClientQuotasResponseEntry) int16 { return x.ErrorCode })
		}),
		"AlterUserScramCredentials": sendTimed(t, ctl, scramReq, func(r *kmsg.AlterUserSCRAMCredentialsResponse) []int16 {
			return listCodes(r.Results, func(x kmsg.AlterUserSCRAMCredentialsResponseResult) int16 { return x.ErrorCode })
		}),
	}
	limit := map[string]time.Duration{}
	for name := range answers {
		limit[name] = untimedAdminTimeout + 1500*time.Millisecond
	}
	expectAnswered(t, answers, nil, limit)
}

// A topic a Metadata request auto-creates, and the transaction topic a
// FindCoordinator creates, wait for the metadata quorum only the broker's
// bound for requests without a timeout: without a quorum, the Metadata
// answers REQUEST_TIMED_OUT for the topic and the FindCoordinator
// COORDINATOR_NOT_AVAILABLE (both retriable) by it. Before, each waited
// the broker's 15 s (past the test connection's 10 s read deadline).
func TestAutoCreationsAnsweredByTheBrokersBoundWithoutAQuorum(t *testing.T) {
	c := startInProcessCluster(t)
	ctl := activeControllerAlone(t, c)

	meta := kmsg.NewPtrMetadataRequest()
	meta.Version, meta.AllowAutoTopicCreation = 12, true
	name := "auto-created"
	meta.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.Version, find.CoordinatorType, find.CoordinatorKeys = 4, coordinatorTxn, []string{"tx-1", "tx-2"}
	answers := map[string]<-chan timedAnswer{
		"Metadata": sendTimed(t, ctl, meta, func(r *kmsg.MetadataResponse) []int16 {
			return listCodes(r.Topics, func(x kmsg.MetadataResponseTopic) int16 { return x.ErrorCode })
		}),
		"FindCoordinator": sendTimed(t, ctl, find, func(r *kmsg.FindCoordinatorResponse) []int16 {
			return listCodes(r.Coordinators, func(x kmsg.FindCoordinatorResponseCoordinator) int16 { return x.ErrorCode })
		}),
	}
	limit := map[string]time.Duration{"Metadata": untimedAdminTimeout + 1500*time.Millisecond, "FindCoordinator": untimedAdminTimeout + 1500*time.Millisecond}
	expectAnswered(t, answers, map[string]int16{"FindCoordinator": kerr.CoordinatorNotAvailable.Code}, limit)
}

// listCodes lists the error code of each element of a response's list,
// for sendTimed.
func listCodes[T any](items []T, code func(T) int16) []int16 {
	out := make([]int16, 0, len(items))
	for _, x := range items {
		out = append(out, code(x))
	}
	return out
}
