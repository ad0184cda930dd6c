package kafkaacl

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/provider/internal/kafkaconn/kafkaconntest"
)

// TestExistsWaitsForTheBrokersToAgree: an ACL is created and deleted on
// three brokers; then the first broker asked, and broker 0 for its next two
// answers, answer as before the deletion (kfake replays a DescribeAcls
// answer that holds it), as brokers that have not applied the deletion yet
// do. Exists does not take the first answer: it asks every live broker
// until they agree, and reports the ACL gone.
func TestExistsWaitsForTheBrokersToAgree(t *testing.T) {
	c, conn := kafkaconntest.Kfake(t, 3)
	ad := &Admin{Conn: conn, PollInterval: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acl := ACL{ResourceType: "TOPIC", ResourceName: "orders", PatternType: "LITERAL", Principal: "User:alice", Host: "*", Operation: "WRITE", Permission: "ALLOW"}
	if err := ad.Create(ctx, acl); err != nil {
		t.Fatal(err)
	}
	if has, err := ad.Exists(ctx, acl); err != nil || !has {
		t.Fatalf("Exists of a created ACL: %v, %v", has, err)
	}
	b, err := acl.Binding()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ad.Conn.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType, req.ResourceName, req.ResourcePatternType = b.Pattern.Type, &b.Pattern.Name, b.Pattern.PatternType
	req.Principal, req.Host, req.Operation, req.PermissionType = &b.Entry.Principal, &b.Entry.Host, b.Entry.Operation, b.Entry.Permission
	before, err := req.RequestWith(ctx, cl)
	if err != nil || len(before.Resources) != 1 {
		t.Fatalf("describing the ACL: %v, %+v", err, before)
	}
	if err := ad.Delete(ctx, acl); err != nil {
		t.Fatal(err)
	}
	asked, staleOn0 := 0, 0
	c.ControlKey(int16(kmsg.DescribeACLs), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		asked++
		switch {
		case asked == 1: // the first answer, whichever broker gives it
		case c.CurrentNode() == 0 && staleOn0 < 2:
			staleOn0++
		default:
			return nil, nil, false
		}
		resp := *before
		resp.SetVersion(kreq.GetVersion())
		return &resp, nil, true
	})
	has, err := ad.Exists(ctx, acl)
	if err != nil || has {
		t.Fatalf("Exists of a deleted ACL some brokers still answer for: %v, %v; want false", has, err)
	}
	if staleOn0 != 2 {
		t.Errorf("broker 0 answered as before the deletion %d times, want 2 (Exists asked each broker until they agreed)", staleOn0)
	}
}
