package policy

import (
	"strings"
	"testing"
)

// FuzzParseEvaluate feeds arbitrary documents to Parse and, for those it accepts, checks the
// evaluation invariants: adding an allow-everything document never turns an explicit deny into
// anything else, and a document plus its own copy decides exactly as the document alone.
func FuzzParseEvaluate(f *testing.F) {
	seeds := []string{
		`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}}`,
		`{"Statement":[{"Effect":"Deny","NotAction":"kms:*","Resource":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":["kms:De*"],"Resource":"arn:aws:kms:*:*:key/*","Condition":{"StringEquals":{"kms:EncryptionContext:cluster":["a","b"]}}}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":"sts:AssumeRole","Condition":{"ForAllValues:StringLike":{"k":"v*"},"Null":{"x":true},"NumericLessThan":{"n":5}}}]}`,
		`{"Statement":[{"Effect":"Allow","NotPrincipal":"*","Action":"*","NotResource":"x"}]}`,
		`[]`, `{`, `{"Statement":[]}`,
	}
	for _, s := range seeds {
		f.Add(s, "kms:Decrypt", "arn:aws:kms:us-east-1:000000000000:key/k", "a")
	}
	allowAll, err := Parse(`{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text, action, resource, value string) {
		doc, err := Parse(text)
		if err != nil {
			return
		}
		req := Request{
			Caller:   Caller{Account: "000000000000", ARNs: []string{"arn:aws:iam::000000000000:role/r"}, Service: "ec2.amazonaws.com"},
			Action:   action,
			Resource: resource,
			Context:  map[string][]string{"kms:EncryptionContext:cluster": {value}, "k": {value, strings.ToUpper(value)}, "n": {value}},
		}
		alone := Evaluate(req, doc)
		if twice := Evaluate(req, doc, doc); twice != alone {
			t.Fatalf("doc twice decided %v, alone %v", twice, alone)
		}
		withAllow := Evaluate(req, doc, allowAll)
		if alone == ExplicitDeny && withAllow != ExplicitDeny {
			t.Fatalf("an allow overrode an explicit deny: %v", withAllow)
		}
		if alone != ExplicitDeny && withAllow != Allowed {
			t.Fatalf("allow-all did not allow: %v (alone %v)", withAllow, alone)
		}
		// Explain's matched statements are the decision's reasons: none for an implicit deny,
		// otherwise statements of the deciding effect, each located in the text.
		e := Explain(req, doc)
		if (e.Decision == ImplicitDeny) != (len(e.Matched) == 0) {
			t.Fatalf("decision %v with %d matched statements", e.Decision, len(e.Matched))
		}
		for _, m := range e.Matched {
			st := doc.Statements[m.Statement]
			if (st.Effect == Deny) != (e.Decision == ExplicitDeny) {
				t.Fatalf("a %s statement reported for %v", st.Effect, e.Decision)
			}
		}
	})
}
