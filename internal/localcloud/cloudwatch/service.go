// Package cloudwatch emulates Amazon CloudWatch metrics, alarms and dashboards for the local
// cloud, in the protocols its clients speak: smithy rpc-v2-cbor (the AWS SDK for Go v2),
// awsQuery (Debian's aws CLI) and awsJson1_0 (newer SDKs and CLIs). Brokers ship metrics here
// with PutMetricData; tests and users read them back with GetMetricData, GetMetricStatistics
// and ListMetrics.
package cloudwatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

const xmlns = "http://monitoring.amazonaws.com/doc/2010-08-01/"

// Retention bounds memory and the state file: PutMetricData accepts data at most two weeks
// old, so points older than retention are dropped; each series keeps at most maxPoints (two
// weeks of one-minute data).
const (
	retention = 15 * 24 * time.Hour
	maxPoints = 20160
	// metricsSaveDelay batches the writes of the metrics file: brokers put metrics every
	// minute, and the file holds every series. A crash loses at most this much metric data;
	// alarms and dashboards are written at once.
	metricsSaveDelay = 30 * time.Second
)

// Service is the emulated CloudWatch of one account. It is safe for concurrent use.
type Service struct {
	account     string
	region      string
	statePath   string // alarms and dashboards; "" keeps the state in memory
	metricsPath string // metric data
	log         *slog.Logger
	now         func() time.Time

	mu           sync.Mutex
	series       map[string]*series // by seriesKey
	alarms       map[string]*alarm  // by name
	dashboards   map[string]*dashboard
	metricsDirty bool        // metric data changed since the last save
	saveTimer    *time.Timer // pending batched save of metric data, nil when none
	closed       bool
	notifier     Notifier      // executes SNS alarm actions; nil: none (SetNotifier)
	evalStop     chan struct{} // stops the periodic alarm evaluation
}

var _ awsapi.Service = (*Service)(nil)

// New returns the CloudWatch service, restoring metrics, alarms and dashboards from
// env.StateDir/cloudwatch.json when present.
func New(env awsapi.Env) (*Service, error) {
	env = env.WithDefaults()
	s := &Service{
		account:    env.Account,
		region:     env.Region,
		log:        env.Logger,
		now:        env.Now,
		series:     map[string]*series{},
		alarms:     map[string]*alarm{},
		dashboards: map[string]*dashboard{},
	}
	if env.StateDir != "" {
		s.statePath = filepath.Join(env.StateDir, "cloudwatch.json")
		s.metricsPath = filepath.Join(env.StateDir, "cloudwatch-metrics.json")
		for _, path := range []string{s.statePath, s.metricsPath} {
			data, err := os.ReadFile(path)
			switch {
			case err == nil:
				if err := s.restore(data); err != nil {
					return nil, fmt.Errorf("%s: %w", path, err)
				}
			case !errors.Is(err, fs.ErrNotExist):
				return nil, fmt.Errorf("reading CloudWatch state: %w", err)
			}
		}
	}
	return s, nil
}

// Close writes any pending state and stops batched saves.
func (s *Service) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.evalStop != nil {
		close(s.evalStop)
		s.evalStop = nil
	}
	if s.saveTimer != nil {
		s.saveTimer.Stop()
		s.saveTimer = nil
	}
	if err := s.saveLocked(); err != nil {
		return err
	}
	return s.saveMetricsLocked()
}

// metricsChangedLocked records new metric data and schedules its save within
// metricsSaveDelay, batching the writes of frequent PutMetricData calls.
func (s *Service) metricsChangedLocked() {
	s.metricsDirty = true
	if s.metricsPath == "" || s.saveTimer != nil || s.closed {
		return
	}
	s.saveTimer = time.AfterFunc(metricsSaveDelay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.saveTimer = nil
		if s.closed {
			return
		}
		if err := s.saveMetricsLocked(); err != nil {
			s.log.Error("cloudwatch: saving metric data", "err", err)
		}
	})
}

// snapshot is the persisted form of the service; the alarms-and-dashboards file and the
// metrics file each hold part of it.
type snapshot struct {
	Series     []*series    `json:"series,omitempty"`
	Alarms     []*alarm     `json:"alarms,omitempty"`
	Dashboards []*dashboard `json:"dashboards,omitempty"`
}

// saveLocked writes alarms and dashboards.
func (s *Service) saveLocked() error {
	if s.statePath == "" {
		return nil
	}
	snap := snapshot{}
	for _, k := range sortedKeys(s.alarms) {
		snap.Alarms = append(snap.Alarms, s.alarms[k])
	}
	for _, k := range sortedKeys(s.dashboards) {
		snap.Dashboards = append(snap.Dashboards, s.dashboards[k])
	}
	return writeSnapshot(s.statePath, snap)
}

// saveMetricsLocked writes the metric data when it changed.
func (s *Service) saveMetricsLocked() error {
	if s.metricsPath == "" || !s.metricsDirty {
		return nil
	}
	snap := snapshot{}
	for _, k := range sortedKeys(s.series) {
		snap.Series = append(snap.Series, s.series[k])
	}
	if err := writeSnapshot(s.metricsPath, snap); err != nil {
		return err
	}
	s.metricsDirty = false
	return nil
}

func writeSnapshot(path string, snap snapshot) error {
	data, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("encoding CloudWatch state: %w", err)
	}
	if err := awsapi.WriteFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("saving CloudWatch state: %w", err)
	}
	return nil
}

func (s *Service) restore(data []byte) error {
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("decoding CloudWatch state: %w", err)
	}
	for _, sr := range snap.Series {
		s.series[seriesKey(sr.Namespace, sr.MetricName, sr.Dimensions)] = sr
	}
	for _, a := range snap.Alarms {
		s.alarms[a.AlarmName] = a
	}
	for _, d := range snap.Dashboards {
		s.dashboards[d.Name] = d
	}
	return nil
}

// operation runs one CloudWatch action. Each checks its own cloudwatch:<Action> permission,
// because the resource and condition keys depend on the decoded input.
type operation struct {
	run     func(s *Service, c *call) (any, error)
	mutates bool // alarms and dashboards are saved at once; metric data in batches
}

type call struct {
	ctx context.Context
	req *awsapi.Request
}

func (c *call) decode(in any) error { return decodeInput(c.req, in) }

func (c *call) authorize(action string, conditions map[string][]string) error {
	return c.req.Authorize(c.ctx, "cloudwatch:"+action, "*", conditions)
}

var operations = map[string]operation{
	"PutMetricData":           {run: (*Service).putMetricData},
	"GetMetricStatistics":     {run: (*Service).getMetricStatistics},
	"GetMetricData":           {run: (*Service).getMetricData},
	"ListMetrics":             {run: (*Service).listMetrics},
	"PutMetricAlarm":          {run: (*Service).putMetricAlarm, mutates: true},
	"DescribeAlarms":          {run: (*Service).describeAlarms},
	"DeleteAlarms":            {run: (*Service).deleteAlarms, mutates: true},
	"SetAlarmState":           {run: (*Service).setAlarmState, mutates: true},
	"DescribeAlarmsForMetric": {run: (*Service).describeAlarmsForMetric},
	"EnableAlarmActions": {mutates: true, run: func(s *Service, c *call) (any, error) {
		return s.setActionsEnabled(c, "EnableAlarmActions", true)
	}},
	"DisableAlarmActions": {mutates: true, run: func(s *Service, c *call) (any, error) {
		return s.setActionsEnabled(c, "DisableAlarmActions", false)
	}},
	"PutDashboard":        {run: (*Service).putDashboard, mutates: true},
	"GetDashboard":        {run: (*Service).getDashboard},
	"ListDashboards":      {run: (*Service).listDashboards},
	"DeleteDashboards":    {run: (*Service).deleteDashboards, mutates: true},
	"TagResource":         {run: (*Service).tagResource, mutates: true},
	"UntagResource":       {run: (*Service).untagResource, mutates: true},
	"ListTagsForResource": {run: (*Service).listTagsForResource},
}

// Handle serves one CloudWatch request, in rpc-v2-cbor or awsQuery.
func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error) {
	switch req.Protocol {
	case awsapi.ProtocolQuery, awsapi.ProtocolRPCv2CBOR, awsapi.ProtocolJSON:
	default:
		return nil, awsapi.Errorf("InvalidAction", "CloudWatch speaks awsQuery, awsJson1_0 and rpc-v2-cbor")
	}
	op, ok := operations[req.Action]
	if !ok {
		return nil, awsapi.Errorf("InvalidAction", "The local cloud does not implement CloudWatch action %s", req.Action)
	}
	out, err := op.run(s, &call{ctx: ctx, req: req})
	if err != nil {
		return nil, err
	}
	if op.mutates {
		s.mu.Lock()
		err := s.saveLocked()
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	return encodeOutput(req, out)
}

func (s *Service) regionOf(req *awsapi.Request) string {
	if req.Region != "" {
		return req.Region
	}
	return s.region
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func invalidParameter(format string, args ...any) error {
	return awsapi.Errorf("InvalidParameterValue", format, args...)
}

func missingParameter(name string) error {
	return awsapi.Errorf("MissingParameter", "The parameter %s is required.", name)
}

func invalidCombination(format string, args ...any) error {
	return awsapi.Errorf("InvalidParameterCombination", format, args...)
}

func resourceNotFound(format string, args ...any) error {
	return &awsapi.Error{Code: "ResourceNotFound", Message: fmt.Sprintf(format, args...), Status: 404}
}

func invalidNextToken(token string) error {
	return awsapi.Errorf("InvalidNextToken", "The NextToken %q is not valid.", token)
}

// pageOffset reads a NextToken: the count of results the earlier pages returned, 0 without a
// token.
func pageOffset(token string) (int, error) {
	if token == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(token)
	if err != nil || n < 0 {
		return 0, invalidNextToken(token)
	}
	return n, nil
}

// pageOf cuts the page of at most size results at offset start out of all, with the NextToken
// of the page after it (nil on the last page).
func pageOf[T any](all []T, start, size int) ([]T, *string) {
	if start >= len(all) {
		return nil, nil
	}
	end := min(start+size, len(all))
	if end == len(all) {
		return all[start:end], nil
	}
	next := strconv.Itoa(end)
	return all[start:end], &next
}
