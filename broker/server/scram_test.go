package server

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
)

// scramAdmin is a client logged in over SCRAM-SHA-512 and its kadm.
func scramAdmin(t *testing.T, s *Server, e *tlsEnv, user, pass string) (*kgo.Client, *kadm.Client) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT_SASL_SCRAM").String()), kgo.DialTLSConfig(clientTLS(t, e.ca, nil)),
		kgo.SASL(scramMech("SCRAM-SHA-512", user, pass)), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// canLogin reports whether user can log in with pass over m.
func canLogin(t *testing.T, addr string, e *tlsEnv, m, user, pass string) error {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTLSConfig(clientTLS(t, e.ca, nil)), kgo.SASL(scramMech(m, user, pass)), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cl.Request(ctx, kmsg.NewPtrMetadataRequest())
	return err
}

func TestScramCredentialAPIs(t *testing.T) {
	s, e, _ := startSCRAMServer(t, map[string]string{"super.users": "User:alice"})
	addr := s.ListenerAddr("CLIENT_SASL_SCRAM").String()
	cl, adm := scramAdmin(t, s, e, "alice", "alice-secret")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Describe: every user, and the bootstrap users' mechanisms.
	all, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || len(all["alice"].CredInfos) != 2 || len(all["bob"].CredInfos) != 1 || all["bob"].CredInfos[0].Iterations != 8192 {
		t.Fatalf("described %+v", all)
	}

	// Create, use, change, delete.
	up := func(pass string) kadm.UpsertSCRAM {
		return kadm.UpsertSCRAM{User: "carol", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: pass}
	}
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{up("carol-1")})
	if err != nil || res.AllFailed() || res["carol"].Err != nil {
		t.Fatalf("creating carol: %+v %v", res, err)
	}
	// This broker answered once its own metadata had the change.
	if err := canLogin(t, addr, e, "SCRAM-SHA-512", "carol", "carol-1"); err != nil {
		t.Fatalf("carol right after her creation: %v", err)
	}
	if _, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{up("carol-2")}); err != nil {
		t.Fatal(err)
	}
	if err := canLogin(t, addr, e, "SCRAM-SHA-512", "carol", "carol-1"); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("carol's old password: %v", err)
	}
	if err := canLogin(t, addr, e, "SCRAM-SHA-512", "carol", "carol-2"); err != nil {
		t.Fatalf("carol's new password: %v", err)
	}
	d, err := adm.DescribeUserSCRAMs(ctx, "carol")
	if err != nil || d["carol"].Err != nil || len(d["carol"].CredInfos) != 1 || d["carol"].CredInfos[0].Iterations != 4096 || d["carol"].CredInfos[0].Mechanism != kadm.ScramSha512 {
		t.Fatalf("describing carol: %+v %v", d, err)
	}
	// Never a password, nor the salted password, in the metadata.
	b, err := metadata.MarshalState(s.node.Controller.State())
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"carol-2", "alice-secret", "bob-secret"} {
		if strings.Contains(string(b), secret) {
			t.Fatalf("the metadata holds the password %q", secret)
		}
	}
	if _, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "carol", Mechanism: kadm.ScramSha512}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := canLogin(t, addr, e, "SCRAM-SHA-512", "carol", "carol-2"); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("carol after her deletion: %v", err)
	}
	if d, _ := adm.DescribeUserSCRAMs(ctx, "carol"); !errors.Is(d["carol"].Err, kerr.ResourceNotFound) {
		t.Fatalf("describing a deleted user: %+v", d)
	}

	// Per-user errors, each user all or nothing.
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	upsert := func(name string, mech int8, iterations int32, salt, salted []byte) {
		u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		u.Name, u.Mechanism, u.Iterations, u.Salt, u.SaltedPassword = name, mech, iterations, salt, salted
		req.Upsertions = append(req.Upsertions, u)
	}
	del := func(name string, mech int8) {
		d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
		d.Name, d.Mechanism = name, mech
		req.Deletions = append(req.Deletions, d)
	}
	good := make([]byte, 64)
	upsert("dave", 2, 100, []byte("salt"), good)      // too few iterations
	upsert("erin", 3, 4096, []byte("salt"), good)     // unknown mechanism
	upsert("frank", 2, 4096, []byte("salt"), good)    // named twice
	del("frank", 2)                                   //
	del("grace", 1)                                   // nothing to delete
	upsert("heidi", 2, 4096, []byte("salt"), good)    // fine
	upsert("ivan", 2, 4096, []byte("salt"), good[:3]) // salted password of the wrong size
	del("heidi", 1)                                   // heidi has no SHA-256: heidi's upsertion is not applied either
	upsert("judy", 1, 4096, []byte("salt"), good[:32])
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int16{
		"dave": kerr.UnacceptableCredential.Code, "erin": kerr.UnsupportedSaslMechanism.Code, "frank": kerr.DuplicateResource.Code,
		"grace": kerr.ResourceNotFound.Code, "heidi": kerr.ResourceNotFound.Code, "ivan": kerr.UnacceptableCredential.Code, "judy": 0,
	}
	var order []string
	for _, r := range resp.Results {
		order = append(order, r.User)
		if w, ok := want[r.User]; !ok || r.ErrorCode != w {
			t.Errorf("%s: %v (%v), want %v", r.User, kerr.ErrorForCode(r.ErrorCode), r.ErrorMessage, kerr.ErrorForCode(w))
		}
	}
	if strings.Join(order, ",") != "frank,grace,heidi,dave,erin,ivan,judy" {
		t.Errorf("results in the order %v, want the users' first appearance", order)
	}
	st := s.node.Controller.State()
	if _, ok := st.Scram["heidi"]; ok {
		t.Error("heidi's upsertion applied although her deletion failed")
	}
	if _, ok := st.ScramCredential("judy", "SCRAM-SHA-256"); !ok {
		t.Error("judy's valid upsertion did not apply")
	}
	// Describe: duplicates and unknown users.
	dreq := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	for _, n := range []string{"alice", "nobody", "alice"} {
		u := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
		u.Name = n
		dreq.Users = append(dreq.Users, u)
	}
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil || len(dresp.Results) != 2 || dresp.Results[0].ErrorCode != kerr.DuplicateResource.Code || dresp.Results[1].ErrorCode != kerr.ResourceNotFound.Code {
		t.Fatalf("describe alice, nobody, alice: %+v %v", dresp, err)
	}
}

// TestScramCredentialAPIsRefused: a principal that is not a super user may
// neither describe nor alter credentials while an authenticated listener
// is on (allow.everyone.if.no.acl.found is then false).
func TestScramCredentialAPIsRefused(t *testing.T) {
	s, e, logs := startSCRAMServer(t, map[string]string{"super.users": "User:alice"})
	bob, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT_SASL_SCRAM").String()), kgo.DialTLSConfig(clientTLS(t, e.ca, nil)),
		kgo.SASL(scramMech("SCRAM-SHA-256", "bob", "bob-secret")), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	badm := kadm.NewClient(bob)
	if _, err := badm.DescribeUserSCRAMs(ctx); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("bob describing credentials: %v", err)
	}
	res, err := badm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "bob", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "mine"}})
	// kadm turns a refusal of every user into its error.
	if !errors.Is(err, kerr.ClusterAuthorizationFailed) && !errors.Is(res["bob"].Err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("bob giving himself a credential: %+v %v", res, err)
	}
	if _, ok := s.node.Controller.State().ScramCredential("bob", "SCRAM-SHA-512"); ok {
		t.Fatal("a refused alteration applied")
	}
	waitLog(t, logs, `msg="authorization denied" log=audit principal=User:bob`)
	// A plaintext client is anonymous, and refused too.
	pl, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT").String()), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	if _, err := kadm.NewClient(pl).DescribeUserSCRAMs(ctx); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("an anonymous client describing credentials: %v", err)
	}
}

// TestScramChangeReachesEveryBroker: a credential created through one
// broker of a three-broker cluster logs in on the others within seconds.
func TestScramChangeReachesEveryBroker(t *testing.T) {
	e := newTLSEnv(t)
	c := startInProcessCluster(t, func(cfg *config.Config) {
		var ps []config.Property
		for k, v := range map[string]string{
			"listeners":                      cfg.ListenersSpec + ",CLIENT_SASL_SCRAM://127.0.0.1:0",
			"listener.security.protocol.map": "CLIENT_SASL_SCRAM:SASL_SSL",
			"ssl.keystore.location":          e.keystore,
			"listener.name.client_sasl_scram.sasl.enabled.mechanisms": "SCRAM-SHA-512",
			// The plaintext clients of these tests administer.
			"super.users": "User:ANONYMOUS",
		} {
			ps = append(ps, config.Property{Key: k, Value: v, Line: len(ps) + 1})
		}
		if err := cfg.ApplyProperties(ps, nil); err != nil {
			t.Fatal(err)
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.servers[1].Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "zoe", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "zoe-secret"}})
	if err != nil || res["zoe"].Err != nil {
		t.Fatalf("creating zoe through broker 1: %+v %v", res, err)
	}
	start := time.Now()
	for _, id := range []int32{2, 3} {
		addr := c.servers[id].ListenerAddr("CLIENT_SASL_SCRAM").String()
		for {
			err := canLogin(t, addr, e, "SCRAM-SHA-512", "zoe", "zoe-secret")
			if err == nil {
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("zoe cannot log in on broker %d %v after her creation: %v", id, time.Since(start), err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("zoe logs in on every broker %v after her creation", time.Since(start).Round(time.Millisecond))
}
