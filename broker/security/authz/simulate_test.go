package authz

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// fakeIAM answers SimulatePrincipalPolicy (two pages) and GetRole in IAM's
// query protocol, and records what it was asked. The local cloud's IAM
// does not simulate policies, so the SDK evaluator's requests and answers
// are checked against this recording.
type fakeIAM struct {
	mu      sync.Mutex
	sources []string
	getRole int
	// simulateErr, when set, is the error code SimulatePrincipalPolicy
	// answers.
	simulateErr string
}

func (f *fakeIAM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fail := func(status int, code string) {
		w.WriteHeader(status)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>r</RequestId></ErrorResponse>`, code, code)
	}
	switch r.Form.Get("Action") {
	case "GetRole":
		f.getRole++
		if r.Form.Get("RoleName") != "app" {
			fail(404, "NoSuchEntity")
			return
		}
		fmt.Fprint(w, `<GetRoleResponse><GetRoleResult><Role><Path>/team/</Path><RoleName>app</RoleName><RoleId>AROAEXAMPLE</RoleId>
<Arn>arn:aws:iam::123456789012:role/team/app</Arn><CreateDate>2020-01-01T00:00:00Z</CreateDate></Role></GetRoleResult></GetRoleResponse>`)
	case "SimulatePrincipalPolicy":
		source := r.Form.Get("PolicySourceArn")
		f.sources = append(f.sources, source)
		if f.simulateErr != "" {
			fail(403, f.simulateErr)
			return
		}
		if source != "arn:aws:iam::123456789012:role/team/app" {
			fail(404, "NoSuchEntity")
			return
		}
		if r.Form.Get("ResourceArns.member.1") != topicRN+"t" || r.Form.Get("ResourceArns.member.2") != "" {
			http.Error(w, "unexpected resources "+r.Form.Encode(), 400)
			return
		}
		// Page 1 answers the first action; page 2, after the marker, the
		// others: ReadData allowed, everything else denied.
		var members strings.Builder
		truncated, marker := "false", ""
		var actions []string
		for i := 1; r.Form.Get(fmt.Sprintf("ActionNames.member.%d", i)) != ""; i++ {
			actions = append(actions, r.Form.Get(fmt.Sprintf("ActionNames.member.%d", i)))
		}
		if r.Form.Get("Marker") == "" {
			actions, truncated, marker = actions[:1], "true", "<Marker>page2</Marker>"
		} else {
			actions = actions[1:]
		}
		for _, a := range actions {
			decision := "implicitDeny"
			if a == "kafka-cluster:ReadData" {
				decision = "allowed"
			}
			if a == "kafka-cluster:DescribeTopic" {
				decision = "explicitDeny"
			}
			fmt.Fprintf(&members, `<member><EvalActionName>%s</EvalActionName><EvalResourceName>%s</EvalResourceName><EvalDecision>%s</EvalDecision></member>`, a, topicRN+"t", decision)
		}
		fmt.Fprintf(w, `<SimulatePrincipalPolicyResponse><SimulatePrincipalPolicyResult><IsTruncated>%s</IsTruncated>%s<EvaluationResults>%s</EvaluationResults></SimulatePrincipalPolicyResult></SimulatePrincipalPolicyResponse>`,
			truncated, marker, members.String())
	default:
		http.Error(w, "unexpected action", 400)
	}
}

func TestSimulateEvaluator(t *testing.T) {
	fake := &fakeIAM{}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client := iam.NewFromConfig(aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	})
	e := NewSimulateEvaluator(client)
	ctx := context.Background()
	actions := []string{"kafka-cluster:ReadData", "kafka-cluster:DescribeTopic", "kafka-cluster:Connect"}

	got, err := e.Evaluate(ctx, roleARN, actions, topicRN+"t")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"kafka-cluster:ReadData": true, "kafka-cluster:DescribeTopic": false, "kafka-cluster:Connect": false}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%v, want %v (both pages read)", got, want)
	}
	// The role's path came from GetRole, asked once.
	if _, err := e.Evaluate(ctx, roleARN, actions, topicRN+"t"); err != nil {
		t.Fatal(err)
	}
	if fake.getRole != 1 || fake.sources[0] != "arn:aws:iam::123456789012:role/team/app" {
		t.Fatalf("GetRole asked %d times, simulated %v", fake.getRole, fake.sources)
	}

	// A principal IAM does not know is allowed nothing, and that is an
	// answer, not an outage.
	got, err = e.Evaluate(ctx, "arn:aws:iam::123456789012:user/gone", actions, topicRN+"t")
	if err != nil || got["kafka-cluster:ReadData"] || len(got) != 3 {
		t.Fatalf("unknown principal: %v %v", got, err)
	}
	// A broker that may not simulate gets an error: the authorizer fails
	// closed and logs it.
	fake.mu.Lock()
	fake.simulateErr = "AccessDenied"
	fake.mu.Unlock()
	if _, err := e.Evaluate(ctx, roleARN, actions, topicRN+"t"); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("AccessDenied: %v", err)
	}
}
