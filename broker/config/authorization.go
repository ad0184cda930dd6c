package config

import (
	"fmt"
	"slices"
	"strings"
)

// IAM authorization modes (tributary.iam.authorization).
const (
	// IAMPolicies authorizes IAM principals by their IAM policies for
	// Amazon MSK's kafka-cluster:* actions, as MSK does; Kafka ACLs do not
	// apply to them. The default.
	IAMPolicies = "policies"
	// IAMACLs authorizes IAM principals by Kafka ACLs, like any other.
	IAMACLs = "acls"
)

// authorizationSettings are the authorizer's settings beside super.users
// and allow.everyone.if.no.acl.found; they are added to the settings
// table.
var authorizationSettings = []Setting{
	user(enumSetting("tributary.iam.authorization", IAMPolicies, []string{IAMPolicies, IAMACLs}, func(c *Config) *string { return &c.IAMAuthorization }),
		"How principals authenticated by an IAM identity token are authorized: policies (their IAM policies for Amazon MSK's kafka-cluster:* actions, asked with iam:SimulatePrincipalPolicy and cached a minute; Kafka ACLs, super.users and allow.everyone.if.no.acl.found do not apply to them, as on MSK) or acls (Kafka ACLs, like every other principal)."),
}

// AuthenticatedListeners names the client listeners that authenticate
// clients (Authenticates): on the others every client is User:ANONYMOUS.
func (c *Config) AuthenticatedListeners() []string {
	var out []string
	for _, l := range c.ClientListeners() {
		if c.Authenticates(l) {
			out = append(out, l.Name)
		}
	}
	return out
}

// IAMListeners names the SASL client listeners that accept IAM identity
// tokens (OAUTHBEARER among their sasl.enabled.mechanisms).
func (c *Config) IAMListeners() []string {
	var out []string
	for _, l := range c.ClientListeners() {
		if l.SASL() && slices.ContainsFunc(c.SASLMechanisms(l.Name), func(m string) bool { return strings.EqualFold(m, "OAUTHBEARER") }) {
			out = append(out, l.Name)
		}
	}
	return out
}

// authorizationErrors checks the authorizer's settings against the
// listeners: allow.everyone.if.no.acl.found=true beside a listener that
// authenticates clients would open every resource no ACL names to every
// authenticated principal.
func (c *Config) authorizationErrors() []*SettingError {
	var errs []*SettingError
	if auth := c.AuthenticatedListeners(); c.allowEveryone != nil && *c.allowEveryone && len(auth) > 0 {
		errs = append(errs, &SettingError{Name: "allow.everyone.if.no.acl.found", Problem: fmt.Sprintf(
			"is true while listener %s authenticates clients: every authenticated principal could do anything no ACL names; leave it unset (false) and grant with ACLs or super.users",
			strings.Join(auth, ", "))})
	}
	return errs
}
