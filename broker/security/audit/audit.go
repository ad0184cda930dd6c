// Package audit writes the broker's audit trail: one structured log/slog
// line per authorization decision worth keeping, that is every denial and
// every allowed create, alter or delete (CREATE, DELETE, ALTER,
// ALTER_CONFIGS), with who asked (principal, client address, listener),
// what (API, operation, resource) and the answer with its reason. Reads and
// writes of data that were allowed are not audited: they are the traffic,
// and would bury the changes.
//
// # How a server uses it
//
// One Logger per broker, from the broker's logger (New(log)). After every
// Authorize call a request handler passes the same actions and decisions
// to Record, with the API key. The lines carry log=audit, so a log
// pipeline (CloudWatch Logs, a file) can route them apart:
//
//	level=WARN msg="authorization denied" log=audit principal=User:bob client=10.0.0.7:51234
//	  listener=SASL_SSL api=DeleteTopics api_key=20 operation=DELETE resource_type=TOPIC
//	  resource=orders allowed=false reason="no ACL allows it"
package audit

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/authz"
)

// Logger writes audit lines.
type Logger struct{ log *slog.Logger }

// New returns a Logger writing to log with log=audit on every line.
func New(log *slog.Logger) *Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Logger{log: log.With("log", "audit")}
}

// Request is who made a request and how.
type Request struct {
	// Principal is the authenticated principal, "User:alice".
	Principal string
	// Client is the client's address.
	Client netip.AddrPort
	// Listener is the listener's name (SSL, SASL_SSL, REPLICATION...).
	Listener string
	// APIKey is the Kafka API key of the request.
	APIKey int16
}

// Audited reports whether a decision on op is written: every denial, and
// allowed creates, alters and deletes.
func Audited(op kmsg.ACLOperation, allowed bool) bool {
	if !allowed {
		return true
	}
	switch op {
	case kmsg.ACLOperationCreate, kmsg.ACLOperationDelete, kmsg.ACLOperationAlter, kmsg.ACLOperationAlterConfigs:
		return true
	}
	return false
}

// Record writes the audited ones of decisions, decisions[i] being the
// answer for actions[i]: denials at WARN, allowed changes at INFO.
func (l *Logger) Record(ctx context.Context, r Request, actions []authz.Action, decisions []authz.Decision) {
	for i, act := range actions {
		if i >= len(decisions) {
			return
		}
		d := decisions[i]
		if !Audited(act.Operation, d.Allowed) {
			continue
		}
		level, msg := slog.LevelInfo, "authorization allowed"
		if !d.Allowed {
			level, msg = slog.LevelWarn, "authorization denied"
		}
		if !l.log.Enabled(ctx, level) {
			continue
		}
		l.log.LogAttrs(ctx, level, msg,
			slog.String("principal", r.Principal),
			slog.String("client", r.Client.String()),
			slog.String("listener", r.Listener),
			slog.String("api", kmsg.NameForKey(r.APIKey)),
			slog.Int("api_key", int(r.APIKey)),
			slog.String("operation", act.Operation.String()),
			slog.String("resource_type", act.Type.String()),
			slog.String("resource", act.Name),
			slog.Bool("allowed", d.Allowed),
			slog.String("reason", d.Reason()),
		)
	}
}

// Refused writes a refusal that no authorizer decided: a failed
// authentication, or an IAM principal refused kafka-cluster:Connect. The
// reason must hold nothing secret (authentication errors of
// broker/iamauth, broker/security/scram and oauthbearer do not).
func (l *Logger) Refused(ctx context.Context, r Request, what, reason string) {
	l.log.LogAttrs(ctx, slog.LevelWarn, "refused",
		slog.String("principal", r.Principal),
		slog.String("client", r.Client.String()),
		slog.String("listener", r.Listener),
		slog.String("api", kmsg.NameForKey(r.APIKey)),
		slog.Int("api_key", int(r.APIKey)),
		slog.String("what", what),
		slog.Bool("allowed", false),
		slog.String("reason", reason),
	)
}

// Changed writes what an allowed change did, beside the line of the
// decision that allowed it, when that line names only the resource the
// permission is on: an ACL created or deleted (the decision is ALTER on
// the cluster). object must hold nothing secret.
func (l *Logger) Changed(ctx context.Context, r Request, what, object string) {
	l.log.LogAttrs(ctx, slog.LevelInfo, "changed",
		slog.String("principal", r.Principal),
		slog.String("client", r.Client.String()),
		slog.String("listener", r.Listener),
		slog.String("api", kmsg.NameForKey(r.APIKey)),
		slog.Int("api_key", int(r.APIKey)),
		slog.String("what", what),
		slog.String("object", object),
	)
}
