package provider

import (
	"fmt"
	"sync"
)

// createClaims holds the ids of the Kafka objects (ACLs, SCRAM credentials,
// quotas) this provider has begun to create. Kafka takes such an object a
// second time without complaint, and each resource's check that the cluster
// does not hold it yet cannot see a sibling resource created in parallel in
// the same apply: without the claim, two resources declaring one ACL both
// "create" it, and destroying either deletes it for both. The zero value is
// ready to use.
type createClaims struct {
	mu   sync.Mutex
	held map[string]bool
}

// claim takes id for one create, or reports false when another resource of
// this apply took it. release gives it back when that create failed, so
// that nothing but a create that succeeded keeps it.
func (c *createClaims) claim(id string) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[id] {
		return nil, false
	}
	if c.held == nil {
		c.held = map[string]bool{}
	}
	c.held[id] = true
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.held, id)
	}, true
}

// duplicateDeclaration is the error detail of a create refused by claim.
func duplicateDeclaration(kind, id string) string {
	return fmt.Sprintf("Another resource of this configuration declares the same %s (%s). The cluster holds it once, "+
		"and two resources owning it would delete it for both when either is destroyed: remove one of them.", kind, id)
}
