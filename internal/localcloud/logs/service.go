// Package logs emulates Amazon CloudWatch Logs (awsJson1_1, X-Amz-Target:
// Logs_20140328.<Operation>) for the local cloud: log groups with retention and tags, log
// streams, PutLogEvents with CloudWatch Logs' batch rules, GetLogEvents with its forward and
// backward tokens, and FilterLogEvents with filter patterns. Brokers ship their logs here; tests
// and users read them back with the SDK or `aws logs`.
package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

const (
	// saveDelay batches the writes of the state file: brokers put log events every few seconds.
	// A crash of the emulator loses at most this much log data; groups and streams are written
	// at once.
	saveDelay = 10 * time.Second
	// maxStreamBytes bounds one stream's stored messages; past it the oldest events go, so a
	// chatty broker cannot fill the emulator's memory. CloudWatch Logs keeps everything within
	// the retention period; this is a difference of the emulator.
	maxStreamBytes = 32 << 20
)

// Service is the emulated CloudWatch Logs of one account. It is safe for concurrent use.
type Service struct {
	account   string
	region    string
	statePath string
	log       *slog.Logger
	now       func() time.Time

	mu        sync.Mutex
	groups    map[string]*logGroup // by name
	nextSeq   uint64               // the next event's sequence number (its eventId)
	dirty     bool
	saveTimer *time.Timer
	closed    bool
}

var _ awsapi.Service = (*Service)(nil)

// logGroup is a log group and its streams.
type logGroup struct {
	Name          string                `json:"name"`
	Created       int64                 `json:"created"` // milliseconds since the epoch
	RetentionDays int32                 `json:"retentionDays,omitempty"`
	KMSKeyID      string                `json:"kmsKeyId,omitempty"`
	Class         string                `json:"class"`
	Tags          map[string]string     `json:"tags,omitempty"`
	Streams       map[string]*logStream `json:"streams,omitempty"`
}

// logStream is a log stream: its events sorted by timestamp, then arrival.
type logStream struct {
	Name       string  `json:"name"`
	Created    int64   `json:"created"`
	LastIngest int64   `json:"lastIngest,omitempty"`
	Events     []event `json:"events,omitempty"`
	Bytes      int64   `json:"bytes,omitempty"`
}

type event struct {
	Timestamp int64  `json:"t"`
	Ingested  int64  `json:"i"`
	Seq       uint64 `json:"s"`
	Message   string `json:"m"`
}

// before orders events by timestamp, then arrival.
func (e event) before(o event) bool {
	if e.Timestamp != o.Timestamp {
		return e.Timestamp < o.Timestamp
	}
	return e.Seq < o.Seq
}

// New returns the CloudWatch Logs service, restoring its state from env.StateDir/logs.json.
func New(env awsapi.Env) (*Service, error) {
	env = env.WithDefaults()
	s := &Service{account: env.Account, region: env.Region, log: env.Logger, now: env.Now, groups: map[string]*logGroup{}}
	if env.StateDir != "" {
		s.statePath = filepath.Join(env.StateDir, "logs.json")
		data, err := os.ReadFile(s.statePath)
		switch {
		case err == nil:
			var snap snapshot
			if err := json.Unmarshal(data, &snap); err != nil {
				return nil, fmt.Errorf("reading CloudWatch Logs state %s: %w", s.statePath, err)
			}
			for _, g := range snap.Groups {
				if g.Streams == nil {
					g.Streams = map[string]*logStream{}
				}
				s.groups[g.Name] = g
			}
			s.nextSeq = snap.NextSeq
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("reading CloudWatch Logs state: %w", err)
		}
	}
	return s, nil
}

type snapshot struct {
	NextSeq uint64      `json:"nextSeq"`
	Groups  []*logGroup `json:"groups"`
}

// Close writes pending state and stops batched saves.
func (s *Service) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.saveTimer != nil {
		s.saveTimer.Stop()
		s.saveTimer = nil
	}
	if !s.dirty {
		return nil
	}
	return s.saveLocked()
}

// changedLocked records a change: structural ones (groups, streams, retention) are written at
// once, new events within saveDelay.
func (s *Service) changedLocked(structural bool) error {
	s.dirty = true
	if s.statePath == "" || s.closed {
		return nil
	}
	if structural {
		return s.saveLocked()
	}
	if s.saveTimer == nil {
		s.saveTimer = time.AfterFunc(saveDelay, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.saveTimer = nil
			if s.closed || !s.dirty {
				return
			}
			if err := s.saveLocked(); err != nil {
				s.log.Error("logs: saving log events", "err", err)
			}
		})
	}
	return nil
}

func (s *Service) saveLocked() error {
	if s.statePath == "" {
		return nil
	}
	if err := awsapi.SaveJSONState(s.statePath, "CloudWatch Logs", snapshot{NextSeq: s.nextSeq, Groups: awsapi.SortedValues(s.groups)}); err != nil {
		return err
	}
	s.dirty = false
	return nil
}

// operation serves one action; it runs with s.mu held.
type operation func(s *Service, c *call) (any, error)

var operations = map[string]operation{
	"CreateLogGroup":        (*Service).createLogGroup,
	"DeleteLogGroup":        (*Service).deleteLogGroup,
	"DescribeLogGroups":     (*Service).describeLogGroups,
	"PutRetentionPolicy":    (*Service).putRetentionPolicy,
	"DeleteRetentionPolicy": (*Service).deleteRetentionPolicy,
	"CreateLogStream":       (*Service).createLogStream,
	"DeleteLogStream":       (*Service).deleteLogStream,
	"DescribeLogStreams":    (*Service).describeLogStreams,
	"PutLogEvents":          (*Service).putLogEvents,
	"GetLogEvents":          (*Service).getLogEvents,
	"FilterLogEvents":       (*Service).filterLogEvents,
	"TagResource":           (*Service).tagResource,
	"UntagResource":         (*Service).untagResource,
	"ListTagsForResource":   (*Service).listTagsForResource,
	"TagLogGroup":           (*Service).tagLogGroup,
	"UntagLogGroup":         (*Service).untagLogGroup,
	"ListTagsLogGroup":      (*Service).listTagsLogGroup,
}

// call is one request as an operation sees it.
type call struct {
	ctx context.Context
	req *awsapi.Request
}

func (c *call) decode(v any) error { return c.req.DecodeJSON(v) }

// Handle serves one CloudWatch Logs request.
func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error) {
	op, err := awsapi.JSONOperation(req, "CloudWatch Logs", "Logs_20140328.", operations)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	out, err := op(s, &call{ctx: ctx, req: req})
	s.mu.Unlock()
	return awsapi.JSONResult(req, out, err)
}

// ARNs, as IAM evaluates them: a log group is arn:aws:logs:<region>:<account>:log-group:<name>,
// a stream arn:...:log-group:<name>:log-stream:<stream>.
func (s *Service) groupARN(name string) string {
	return "arn:aws:logs:" + s.region + ":" + s.account + ":log-group:" + name
}

func (s *Service) streamARN(group, stream string) string {
	return s.groupARN(group) + ":log-stream:" + stream
}

// authorize checks logs:<Action> on the first resource, or any of the others: CloudWatch Logs
// policies name a log group both as arn:...:log-group:<name> and as arn:...:log-group:<name>:*,
// and either form grants group-level actions. An explicit Deny on any form refuses.
func (c *call) authorize(resources ...string) error {
	action := "logs:" + c.req.Action
	var first error
	allowed := false
	for _, r := range resources {
		err := c.req.Authorize(c.ctx, action, r, nil)
		if err == nil {
			allowed = true
			break
		}
		if first == nil {
			first = err
		}
	}
	if !allowed {
		return first
	}
	for _, r := range resources {
		if err := c.req.CheckExplicitDeny(c.ctx, action, r, nil); err != nil {
			return err
		}
	}
	return nil
}

func (c *call) authorizeGroup(s *Service, name string) error {
	return c.authorize(s.groupARN(name), s.groupARN(name)+":*")
}

// Errors, as CloudWatch Logs names them.

func invalidParameter(format string, args ...any) error {
	return awsapi.Errorf("InvalidParameterException", format, args...)
}

func notFound(format string, args ...any) error {
	return awsapi.Errorf("ResourceNotFoundException", format, args...)
}

func alreadyExists(format string, args ...any) error {
	return awsapi.Errorf("ResourceAlreadyExistsException", format, args...)
}

var (
	groupNamePattern  = regexp.MustCompile(`^[.\-_/#A-Za-z0-9]{1,512}$`)
	streamNamePattern = regexp.MustCompile(`^[^:*]{1,512}$`)
)

func checkGroupName(name string) error {
	if !groupNamePattern.MatchString(name) {
		return invalidParameter("1 validation error detected: Value '%s' at 'logGroupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+ and have length between 1 and 512", name)
	}
	return nil
}

// groupLocked finds a log group by name, or by the ARN a logGroupIdentifier may give.
func (s *Service) groupLocked(name, identifier string) (*logGroup, error) {
	if name != "" && identifier != "" {
		return nil, invalidParameter("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
	}
	if identifier != "" {
		name = identifier
		if rest, ok := strings.CutPrefix(identifier, s.groupARN("")); ok {
			name = strings.TrimSuffix(rest, ":*")
		}
	}
	if name == "" {
		return nil, invalidParameter("1 validation error detected: Value null at 'logGroupName' failed to satisfy constraint: Member must not be null")
	}
	g, ok := s.groups[name]
	if !ok {
		return nil, notFound("The specified log group does not exist.")
	}
	return g, nil
}

func (g *logGroup) streamLocked(name string) (*logStream, error) {
	st, ok := g.Streams[name]
	if !ok {
		return nil, notFound("The specified log stream does not exist.")
	}
	return st, nil
}

// expireLocked drops the events of a group older than its retention, as CloudWatch Logs deletes
// expired events.
func (s *Service) expireLocked(g *logGroup) {
	if g.RetentionDays == 0 {
		return
	}
	cutoff := s.now().Add(-time.Duration(g.RetentionDays) * 24 * time.Hour).UnixMilli()
	for _, st := range g.Streams {
		i := sort.Search(len(st.Events), func(i int) bool { return st.Events[i].Timestamp >= cutoff })
		if i > 0 {
			for _, e := range st.Events[:i] {
				st.Bytes -= int64(len(e.Message))
			}
			st.Events = append([]event(nil), st.Events[i:]...)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
