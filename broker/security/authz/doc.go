// Package authz decides whether a principal may do an operation on a
// resource, with Kafka's semantics for ACLs and Amazon MSK's for IAM
// principals.
//
// # ACLs
//
// A Binding is one ACL (Kafka's AclBinding): a resource pattern (TOPIC,
// GROUP, CLUSTER, TRANSACTIONAL_ID, DELEGATION_TOKEN or USER; LITERAL,
// with "*" for every resource, or PREFIXED) and an entry (principal or
// "User:*", host or "*", operation, ALLOW or DENY). ACLs is an immutable,
// indexed set of them. The metadata log keeps the committed ACLs: on
// CreateAcls it validates each binding (Binding.Validate, refusals are
// INVALID_REQUEST with the message), commits, and on apply builds
// acls.With(bindings...); on DeleteAcls it validates the filters
// (FilterFromDelete, Filter.Validate) and applies acls.Without(filters...),
// which also says which ACLs each filter matched. Either way it hands the
// new snapshot to ACLAuthorizer.SetACLs; requests never take a lock.
// DescribeAcls is acls.Describe(FilterFromDescribe(req)). Filters match as
// Kafka's AclBindingFilter, including ANY and MATCH pattern types.
//
// ACLAuthorizer implements Kafka's StandardAuthorizer rules (super.users,
// DENY wins, implied operations, allow.everyone.if.no.acl.found) and
// AuthorizeByResourceType (KIP-679, for idempotent producers).
//
// # Which API needs what
//
// ForAPI(key) says, for every Kafka API key, what its handler checks:
// which operation on which resource type, named by which request field,
// and whether a denial fails the request, marks one resource, or filters
// it out of the answer, with the error code Kafka uses. A test fails when
// the broker serves an API key the table does not cover.
//
// # IAM principals
//
// IAMAuthorizer maps each (operation, resource) to Amazon MSK's
// kafka-cluster:* actions and ARNs
// (arn:aws:kafka:<region>:<account>:topic/<cluster name>/<cluster uuid>/<topic>,
// and group/, transactional-id/, cluster/) and asks a PolicyEvaluator, the
// SDK one being iam:SimulatePrincipalPolicy, caching each (principal,
// action, resource) answer for a minute. When IAM cannot be asked, it
// denies and logs (fail closed). The root user of the cluster's own
// account is allowed every kafka-cluster action without asking, as IAM
// allows it everything in its account and will not simulate it. Router sends IAM principals to it and
// everyone else to the ACL authorizer.
//
// # How a server uses it
//
// After authentication, a connection has a RequestContext (principal,
// client address, whether the principal came from an IAM token). An IAM
// connection first passes IAMAuthorizer.Connect, or is closed. Each
// request handler builds the Actions its ForAPI entry lists, calls
// Authorize once with all of them, and answers denials with the entry's
// error code; every denial, and every create, alter or delete, is written
// with package audit.
package authz
