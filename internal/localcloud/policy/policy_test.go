package policy

import (
	"slices"
	"testing"
)

const account = "000000000000"

func mustParse(t *testing.T, text string) *Document {
	t.Helper()
	doc, err := Parse(text)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return doc
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"kms:*", "kms:Decrypt", true},
		{"kms:De*", "kms:Decrypt", true},
		{"kms:De*", "kms:Encrypt", false},
		{"kms:?ecrypt", "kms:Decrypt", true},
		{"kms:?ecrypt", "kms:ecrypt", false},
		{"arn:aws:kms:*:000000000000:key/*", "arn:aws:kms:us-east-1:000000000000:key/abc", true},
		{"arn:aws:kms:*:111111111111:key/*", "arn:aws:kms:us-east-1:000000000000:key/abc", false},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false},
		{"abc", "abcd", false},
	}
	for _, tt := range tests {
		if got := Glob(tt.pattern, tt.s); got != tt.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, text string }{
		{"not json", "{"},
		{"no statement", `{"Version":"2012-10-17"}`},
		{"bad effect", `{"Statement":{"Effect":"Maybe","Action":"*","Resource":"*"}}`},
		{"no action", `{"Statement":{"Effect":"Allow","Resource":"*"}}`},
		{"action and notaction", `{"Statement":{"Effect":"Allow","Action":"*","NotAction":"s3:*","Resource":"*"}}`},
		{"bad principal", `{"Statement":{"Effect":"Allow","Principal":"me","Action":"*"}}`},
		{"unknown principal type", `{"Statement":{"Effect":"Allow","Principal":{"Alien":"x"},"Action":"*"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.text); err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
		})
	}
}

func TestEvaluateIdentityPolicy(t *testing.T) {
	doc := mustParse(t, `{
	  "Version": "2012-10-17",
	  "Statement": [
	    {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:Describe*"], "Resource": "arn:aws:kms:*:000000000000:key/*",
	     "Condition": {"StringEquals": {"kms:EncryptionContext:cluster": "prod"}}},
	    {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
	     "Condition": {"StringLike": {"cloudwatch:namespace": "Tributary/*"}}},
	    {"Effect": "Deny", "NotAction": ["kms:*", "cloudwatch:*"], "Resource": "*"}
	  ]
	}`)
	key := "arn:aws:kms:us-east-1:000000000000:key/1234"
	tests := []struct {
		name string
		req  Request
		want Decision
	}{
		{"decrypt with matching context", Request{Action: "kms:Decrypt", Resource: key,
			Context: map[string][]string{"kms:EncryptionContext:cluster": {"prod"}}}, Allowed},
		{"context key case-insensitive", Request{Action: "KMS:decrypt", Resource: key,
			Context: map[string][]string{"KMS:EncryptionContext:Cluster": {"prod"}}}, Allowed},
		{"decrypt with other context", Request{Action: "kms:Decrypt", Resource: key,
			Context: map[string][]string{"kms:EncryptionContext:cluster": {"dev"}}}, ImplicitDeny},
		{"decrypt without context", Request{Action: "kms:Decrypt", Resource: key}, ImplicitDeny},
		{"encrypt not allowed", Request{Action: "kms:Encrypt", Resource: key,
			Context: map[string][]string{"kms:EncryptionContext:cluster": {"prod"}}}, ImplicitDeny},
		{"put metrics in namespace", Request{Action: "cloudwatch:PutMetricData", Resource: "*",
			Context: map[string][]string{"cloudwatch:namespace": {"Tributary/Kafka"}}}, Allowed},
		{"put metrics elsewhere", Request{Action: "cloudwatch:PutMetricData", Resource: "*",
			Context: map[string][]string{"cloudwatch:namespace": {"Other"}}}, ImplicitDeny},
		{"explicit deny via NotAction", Request{Action: "ec2:RunInstances", Resource: "*"}, ExplicitDeny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Evaluate(tt.req, doc); got != tt.want {
				t.Fatalf("Evaluate = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDenyOverridesAllow(t *testing.T) {
	allow := mustParse(t, `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`)
	deny := mustParse(t, `{"Statement":{"Effect":"Deny","Action":"kms:ScheduleKeyDeletion","Resource":"*"}}`)
	if got := Evaluate(Request{Action: "kms:ScheduleKeyDeletion", Resource: "k"}, allow, deny); got != ExplicitDeny {
		t.Fatalf("got %v, want ExplicitDeny", got)
	}
	if got := Evaluate(Request{Action: "kms:Encrypt", Resource: "k"}, allow, deny); got != Allowed {
		t.Fatalf("got %v, want Allowed", got)
	}
	if got := Evaluate(Request{Action: "kms:Encrypt", Resource: "k"}); got != ImplicitDeny {
		t.Fatalf("no policies: got %v, want ImplicitDeny", got)
	}
}

func TestConditionOperators(t *testing.T) {
	tests := []struct {
		op   string
		have []string
		want []string
		ok   bool
	}{
		{"StringEquals", []string{"a"}, []string{"b", "a"}, true},
		{"StringEquals", nil, []string{"a"}, false},
		{"StringNotEquals", []string{"a"}, []string{"a"}, false},
		{"StringNotEquals", []string{"c"}, []string{"a", "b"}, true},
		{"StringNotEquals", nil, []string{"a"}, true},
		{"StringEqualsIfExists", nil, []string{"a"}, true},
		{"StringEqualsIfExists", []string{"b"}, []string{"a"}, false},
		{"StringEqualsIgnoreCase", []string{"ABC"}, []string{"abc"}, true},
		{"StringLike", []string{"cluster-7"}, []string{"cluster-*"}, true},
		{"StringNotLike", []string{"cluster-7"}, []string{"cluster-*"}, false},
		{"ArnLike", []string{"arn:aws:iam::1:role/x"}, []string{"arn:aws:iam::*:role/*"}, true},
		{"Bool", []string{"true"}, []string{"true"}, true},
		{"Bool", []string{"false"}, []string{"true"}, false},
		{"NumericLessThan", []string{"5"}, []string{"10"}, true},
		{"NumericGreaterThanEquals", []string{"5"}, []string{"10"}, false},
		{"NumericEquals", []string{"x"}, []string{"10"}, false},
		{"Null", nil, []string{"true"}, true},
		{"Null", []string{"x"}, []string{"true"}, false},
		{"Null", []string{"x"}, []string{"false"}, true},
		{"ForAllValues:StringEquals", []string{"a", "b"}, []string{"a", "b", "c"}, true},
		{"ForAllValues:StringEquals", []string{"a", "d"}, []string{"a", "b", "c"}, false},
		{"ForAllValues:StringEquals", nil, []string{"a"}, true},
		{"ForAnyValue:StringEquals", []string{"x", "b"}, []string{"a", "b"}, true},
		{"ForAnyValue:StringEquals", []string{"x", "y"}, []string{"a", "b"}, false},
		{"ForAnyValue:StringEquals", nil, []string{"a"}, false},
		{"IpAddress", []string{"10.0.0.1"}, []string{"10.0.0.0/8"}, false},
		{"DateLessThan", []string{"2026-11-25T08:00:00Z"}, []string{"2027-01-01T00:00:00Z"}, true},
		{"DateGreaterThan", []string{"2026-11-25T08:00:00Z"}, []string{"2027-01-01T00:00:00Z"}, false},
		{"DateEquals", []string{"1764057600"}, []string{"2025-11-25T08:00:00Z"}, true},
		{"DateNotEquals", []string{"garbage"}, []string{"2025-11-25T08:00:00Z"}, true},
	}
	for _, tt := range tests {
		if got := conditionHolds(tt.op, tt.have, tt.want); got != tt.ok {
			t.Errorf("%s have=%v want=%v: got %v, want %v", tt.op, tt.have, tt.want, got, tt.ok)
		}
	}
}

func TestTrustPolicyPrincipals(t *testing.T) {
	doc := mustParse(t, `{"Version":"2012-10-17","Statement":[
	  {"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"},
	  {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:role/admin"]},"Action":"sts:AssumeRole"}]}`)
	tests := []struct {
		name   string
		caller Caller
		want   Decision
	}{
		{"ec2 service", Caller{Service: "ec2.amazonaws.com"}, Allowed},
		{"admin role session", Caller{Account: account, ARNs: []string{
			"arn:aws:sts::000000000000:assumed-role/admin/s", "arn:aws:iam::000000000000:role/admin"}}, Allowed},
		{"other role", Caller{Account: account, ARNs: []string{"arn:aws:iam::000000000000:role/other"}}, ImplicitDeny},
		{"root user", Caller{Account: account, ARNs: []string{"arn:aws:iam::000000000000:root"}}, ImplicitDeny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(Request{Caller: tt.caller, Action: "sts:AssumeRole", Resource: "arn:aws:iam::000000000000:role/broker"}, doc)
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}

	accountWide := mustParse(t, `{"Statement":{"Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":"sts:AssumeRole"}}`)
	got := Evaluate(Request{Caller: Caller{Account: account, ARNs: []string{"arn:aws:iam::000000000000:user/u"}}, Action: "sts:AssumeRole"}, accountWide)
	if got != Allowed {
		t.Fatalf("account principal: got %v, want Allowed", got)
	}
	got = Evaluate(Request{Caller: Caller{Account: "111111111111"}, Action: "sts:AssumeRole"}, accountWide)
	if got != ImplicitDeny {
		t.Fatalf("other account: got %v, want ImplicitDeny", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		text string
		ok   bool
	}{
		{"identity", Identity, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}}`, true},
		{"identity with principal", Identity, `{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}}`, false},
		{"identity without resource", Identity, `{"Statement":{"Effect":"Allow","Action":"kms:Decrypt"}}`, false},
		{"action without vendor", Identity, `{"Statement":{"Effect":"Allow","Action":"Decrypt","Resource":"*"}}`, false},
		{"bad version", Identity, `{"Version":"2024-01-01","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`, false},
		{"unknown operator", Identity, `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringSortOf":{"a":"b"}}}}`, false},
		{"bad qualifier", Identity, `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForSome:StringEquals":{"a":"b"}}}}`, false},
		{"accepted unevaluated operator", Identity, `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAnyValue:IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}}}`, true},
		{"trust", Trust, `{"Statement":{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}}`, true},
		{"trust without principal", Trust, `{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole"}}`, false},
		{"trust with resource", Trust, `{"Statement":{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole","Resource":"*"}}`, false},
		{"key policy", Resource, `{"Statement":{"Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":"kms:*","Resource":"*"}}`, true},
		{"key policy without principal", Resource, `{"Statement":{"Effect":"Allow","Action":"kms:*","Resource":"*"}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mustParse(t, tt.text).Validate(tt.kind)
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestPolicyVariables(t *testing.T) {
	doc := mustParse(t, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*AccessKey*",
	  "Resource":"arn:aws:iam::000000000000:user/${aws:username}","Condition":{"StringEquals":{"aws:userid":"${aws:userid}"}}}]}`)
	own := Request{Action: "iam:CreateAccessKey", Resource: "arn:aws:iam::000000000000:user/alice",
		Context: map[string][]string{"aws:username": {"alice"}, "aws:userid": {"AIDAALICE"}}}
	if got := Evaluate(own, doc); got != Allowed {
		t.Fatalf("own user: %v", got)
	}
	other := own
	other.Resource = "arn:aws:iam::000000000000:user/bob"
	if got := Evaluate(other, doc); got != ImplicitDeny {
		t.Fatalf("another user: %v", got)
	}
	noName := own
	noName.Context = map[string][]string{"aws:userid": {"AIDAALICE"}}
	if got := Evaluate(noName, doc); got != ImplicitDeny {
		t.Fatalf("without aws:username (a role session): %v", got)
	}
	legacy := mustParse(t, `{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::${aws:username}"}]}`)
	if got := Evaluate(Request{Action: "s3:GetObject", Resource: "arn:aws:s3:::${aws:username}", Context: own.Context}, legacy); got != Allowed {
		t.Fatalf("2008-10-17 documents take variables literally: %v", got)
	}
	if got, ok := substitute("a-${$}-${aws:username}", own.Context); !ok || got != "a-$-alice" {
		t.Fatalf("substitute = %q %v", got, ok)
	}
}

func TestExplain(t *testing.T) {
	doc := mustParse(t, `{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "A", "Effect": "Allow", "Action": "kafka-cluster:*", "Resource": "*"},
    {"Sid": "B", "Effect": "Allow", "Action": "kafka-cluster:WriteData", "Resource": "*",
     "Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1"}, "Null": {"aws:TokenIssueTime": "true"}}},
    {"Sid": "C", "Effect": "Deny", "Action": "kafka-cluster:Delete*", "Resource": "*",
     "Condition": {"ForAnyValue:StringLike": {"aws:TagKeys": "protected*"}}}
  ]
}`)
	tests := []struct {
		name     string
		action   string
		context  map[string][]string
		decision Decision
		matched  []int // statement indexes
		missing  []string
	}{
		{"every allow is reported", "kafka-cluster:WriteData", map[string][]string{"aws:RequestedRegion": {"us-east-1"}}, Allowed, []int{0, 1}, nil},
		{"a key the request lacks", "kafka-cluster:WriteData", nil, Allowed, []int{0}, []string{"aws:RequestedRegion"}},
		{"deny alone is reported", "kafka-cluster:DeleteTopic", map[string][]string{"aws:TagKeys": {"x", "protected-1"}}, ExplicitDeny, []int{2}, nil},
		{"deny whose key is missing", "kafka-cluster:DeleteTopic", nil, Allowed, []int{0}, []string{"aws:TagKeys"}},
		{"nothing applies", "kms:Decrypt", nil, ImplicitDeny, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Explain(Request{Action: tt.action, Resource: "arn:aws:kafka:us-east-1:000000000000:topic/c/u/t", Context: tt.context}, nil, doc)
			var got []int
			for _, m := range e.Matched {
				if m.Document != 1 {
					t.Fatalf("statement of document %d, want 1 (the nil document counts)", m.Document)
				}
				got = append(got, m.Statement)
			}
			if e.Decision != tt.decision || !slices.Equal(got, tt.matched) || !slices.Equal(e.MissingKeys, tt.missing) {
				t.Fatalf("Explain = %v %v %v, want %v %v %v", e.Decision, got, e.MissingKeys, tt.decision, tt.matched, tt.missing)
			}
			if d := Evaluate(Request{Action: tt.action, Resource: "arn:aws:kafka:us-east-1:000000000000:topic/c/u/t", Context: tt.context}, doc); d != e.Decision {
				t.Fatalf("Evaluate = %v, Explain = %v", d, e.Decision)
			}
		})
	}
}

func TestStatementPositions(t *testing.T) {
	tests := []struct {
		name string
		text string
		want [][2]Position
	}{
		{"one statement object", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`,
			[][2]Position{{{1, 38}, {1, 83}}}},
		{"a list over lines", "{\n  \"Statement\": [\n    {\"Effect\": \"Allow\", \"Action\": \"*\", \"Resource\": \"*\"},\n    {\n      \"Effect\": \"Deny\", \"Action\": \"s3:*\", \"Resource\": \"*\"\n    }\n  ],\n  \"Version\": \"2012-10-17\"\n}",
			[][2]Position{{{3, 6}, {3, 56}}, {{4, 6}, {6, 6}}}},
		{"nested braces in a statement", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"a":"true"}}}],"Id":"x"}`,
			[][2]Position{{{1, 16}, {1, 95}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := mustParse(t, tt.text)
			if len(doc.Statements) != len(tt.want) {
				t.Fatalf("%d statements", len(doc.Statements))
			}
			for i, st := range doc.Statements {
				if st.Start != tt.want[i][0] || st.End != tt.want[i][1] {
					t.Errorf("statement %d at %v..%v, want %v..%v", i, st.Start, st.End, tt.want[i][0], tt.want[i][1])
				}
			}
		})
	}
}
