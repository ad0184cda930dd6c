package authz_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/authz"
	"github.com/tributary/tributary/broker/server"
)

// TestEveryServedAPIHasAnAuthorization fails when the broker serves an API
// key the authorization table does not cover: a new API must say what it
// checks before it ships.
func TestEveryServedAPIHasAnAuthorization(t *testing.T) {
	served := server.SupportedAPIs()
	if len(served) == 0 {
		t.Fatal("the broker serves no API")
	}
	for _, k := range served {
		a, ok := authz.ForAPI(k.ApiKey)
		if !ok {
			t.Errorf("API key %d (%s) is served but has no entry in authz's table", k.ApiKey, kmsg.NameForKey(k.ApiKey))
			continue
		}
		if !a.BeforeAuthentication && len(a.Checks) == 0 && a.Note == "" {
			t.Errorf("API key %d (%s) has neither checks nor a note saying why it needs none", k.ApiKey, kmsg.NameForKey(k.ApiKey))
		}
	}
}

func TestAuthorizationTableIsWellFormed(t *testing.T) {
	preAuth := map[int16]bool{17: true, 18: true, 36: true}
	for _, key := range authz.APIKeys() {
		a, _ := authz.ForAPI(key)
		name := kmsg.NameForKey(key)
		if name == "Unknown" || a.Key != key {
			t.Errorf("key %d is not a Kafka API key", key)
		}
		if a.BeforeAuthentication != preAuth[key] {
			t.Errorf("%s: BeforeAuthentication %v; only ApiVersions, SaslHandshake and SaslAuthenticate are served before authentication", name, a.BeforeAuthentication)
		}
		for i, c := range a.Checks {
			if c.OrElse && i == 0 {
				t.Errorf("%s: the first check is an alternative to nothing", name)
			}
			if c.Effect != authz.Filtered && c.Code == 0 {
				t.Errorf("%s check %d: a denial that fails or marks resources needs an error code", name, i)
			}
			if c.Operation <= kmsg.ACLOperationAll || c.Type <= kmsg.ACLResourceTypeAny || c.On == "" {
				t.Errorf("%s check %d: %+v is not a concrete operation on a resource", name, i, c)
			}
		}
	}
	if _, ok := authz.ForAPI(999); ok {
		t.Error("an unknown key has an entry")
	}
}
