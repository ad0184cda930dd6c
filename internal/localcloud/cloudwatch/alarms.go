package cloudwatch

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// MetricAlarm is an alarm as DescribeAlarms returns it (field names are AWS's).
type MetricAlarm struct {
	AlarmName                          string
	AlarmArn                           string
	AlarmDescription                   string
	AlarmConfigurationUpdatedTimestamp time.Time
	ActionsEnabled                     bool
	OKActions                          []string
	AlarmActions                       []string
	InsufficientDataActions            []string
	StateValue                         string
	StateReason                        string
	StateUpdatedTimestamp              time.Time
	StateTransitionedTimestamp         time.Time
	MetricName                         string
	Namespace                          string
	Statistic                          string `json:",omitempty"`
	ExtendedStatistic                  string `json:",omitempty"`
	Dimensions                         []Dimension
	Period                             int32
	Unit                               string            `json:",omitempty"`
	Metrics                            []metricDataQuery `json:",omitempty"` // a metric math alarm
	EvaluationPeriods                  int32
	DatapointsToAlarm                  int32
	Threshold                          float64
	ComparisonOperator                 string
	TreatMissingData                   string
	EvaluateLowSampleCountPercentile   string `json:",omitempty"`
}

// alarm is a stored alarm.
type alarm struct {
	MetricAlarm
	Tags []Tag `json:"tags,omitempty"`
	// ManualUntil: a state set with SetAlarmState holds until the next evaluation period.
	ManualUntil time.Time `json:"manualUntil,omitzero"`
}

// Tag is a resource tag.
type Tag struct {
	Key   string
	Value string
}

type putMetricAlarmInput struct {
	AlarmName                        string
	AlarmDescription                 string
	ActionsEnabled                   *bool
	OKActions                        []string
	AlarmActions                     []string
	InsufficientDataActions          []string
	MetricName                       string
	Namespace                        string
	Statistic                        string
	ExtendedStatistic                string
	Dimensions                       []Dimension
	Period                           int32
	Unit                             string
	EvaluationPeriods                int32
	DatapointsToAlarm                int32
	Threshold                        *float64
	ComparisonOperator               string
	TreatMissingData                 string
	EvaluateLowSampleCountPercentile string
	Metrics                          []metricDataQuery
	ThresholdMetricId                string
	Tags                             []Tag
}

var comparisons = map[string]func(v, threshold float64) bool{
	"GreaterThanOrEqualToThreshold": func(v, t float64) bool { return v >= t },
	"GreaterThanThreshold":          func(v, t float64) bool { return v > t },
	"LessThanThreshold":             func(v, t float64) bool { return v < t },
	"LessThanOrEqualToThreshold":    func(v, t float64) bool { return v <= t },
}

func (s *Service) putMetricAlarm(c *call) (any, error) {
	var in putMetricAlarmInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.AlarmName == "" || len(in.AlarmName) > 255 {
		return nil, missingParameter("AlarmName (1-255 characters)")
	}
	if in.ThresholdMetricId != "" {
		return nil, invalidParameter("Anomaly detection alarms (ThresholdMetricId) are not supported by the local cloud.")
	}
	if _, ok := comparisons[in.ComparisonOperator]; !ok {
		return nil, invalidParameter("The value %q for parameter ComparisonOperator is invalid or not supported by the local cloud.", in.ComparisonOperator)
	}
	if in.EvaluationPeriods < 1 {
		return nil, missingParameter("EvaluationPeriods (at least 1)")
	}
	if in.DatapointsToAlarm == 0 {
		in.DatapointsToAlarm = in.EvaluationPeriods
	}
	if in.DatapointsToAlarm < 1 || in.DatapointsToAlarm > in.EvaluationPeriods {
		return nil, invalidParameter("DatapointsToAlarm must be between 1 and EvaluationPeriods.")
	}
	if in.Metrics != nil {
		if err := checkAlarmQueries(&in); err != nil {
			return nil, err
		}
	} else {
		if in.MetricName == "" || in.Namespace == "" {
			return nil, missingParameter("MetricName and Namespace")
		}
		if (in.Statistic == "") == (in.ExtendedStatistic == "") {
			return nil, invalidCombination("Exactly one of Statistic and ExtendedStatistic must be specified.")
		}
		if in.Statistic != "" && (!validStatistic(in.Statistic) || strings.HasPrefix(in.Statistic, "p")) {
			return nil, invalidParameter("The value %s for parameter Statistic is invalid.", in.Statistic)
		}
		if in.ExtendedStatistic != "" && !percentilePattern.MatchString(in.ExtendedStatistic) {
			return nil, invalidParameter("The value %s for parameter ExtendedStatistic is not supported by the local cloud (use pNN).", in.ExtendedStatistic)
		}
		if err := checkPeriod("Period", in.Period); err != nil {
			return nil, err
		}
	}
	if in.Threshold == nil {
		return nil, missingParameter("Threshold")
	}
	if err := checkValue("Threshold", *in.Threshold); err != nil {
		return nil, err
	}
	if in.Unit != "" && !validUnits[in.Unit] {
		return nil, invalidParameter("The value %s for parameter Unit is not a valid unit.", in.Unit)
	}
	switch in.TreatMissingData {
	case "":
		in.TreatMissingData = "missing"
	case "missing", "breaching", "notBreaching", "ignore":
	default:
		return nil, invalidParameter("The value %s for parameter TreatMissingData is invalid.", in.TreatMissingData)
	}
	if err := checkDimensions("Dimensions", in.Dimensions, true); err != nil {
		return nil, err
	}
	arn := "arn:aws:cloudwatch:" + s.regionOf(c.req) + ":" + s.account + ":alarm:" + in.AlarmName
	if err := c.req.Authorize(c.ctx, "cloudwatch:PutMetricAlarm", arn, nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	a, ok := s.alarms[in.AlarmName]
	if !ok {
		a = &alarm{MetricAlarm: MetricAlarm{AlarmArn: arn, StateValue: "INSUFFICIENT_DATA",
			StateReason: "Unchecked: Initial alarm creation", StateUpdatedTimestamp: now, StateTransitionedTimestamp: now}}
		s.alarms[in.AlarmName] = a
	}
	m := &a.MetricAlarm
	m.AlarmName, m.AlarmDescription, m.AlarmConfigurationUpdatedTimestamp = in.AlarmName, in.AlarmDescription, now
	m.ActionsEnabled = in.ActionsEnabled == nil || *in.ActionsEnabled
	m.OKActions, m.AlarmActions, m.InsufficientDataActions = nonNil(in.OKActions), nonNil(in.AlarmActions), nonNil(in.InsufficientDataActions)
	m.MetricName, m.Namespace, m.Statistic, m.ExtendedStatistic = in.MetricName, in.Namespace, in.Statistic, in.ExtendedStatistic
	m.Dimensions = append([]Dimension{}, in.Dimensions...)
	m.Period, m.Unit, m.EvaluationPeriods, m.DatapointsToAlarm = in.Period, in.Unit, in.EvaluationPeriods, in.DatapointsToAlarm
	m.Threshold, m.ComparisonOperator, m.TreatMissingData = *in.Threshold, in.ComparisonOperator, in.TreatMissingData
	m.EvaluateLowSampleCountPercentile = in.EvaluateLowSampleCountPercentile
	m.Metrics = in.Metrics
	if in.Tags != nil {
		a.Tags = mergeTags(a.Tags, in.Tags)
	}
	return nil, nil
}

// checkAlarmQueries validates a metric math alarm: queries instead of a metric, exactly one of
// them returning data, and a period to evaluate it with (in.Period is set from it).
func checkAlarmQueries(in *putMetricAlarmInput) error {
	if in.MetricName != "" || in.Namespace != "" || in.Statistic != "" || in.ExtendedStatistic != "" || in.Dimensions != nil || in.Period != 0 || in.Unit != "" {
		return invalidCombination("Metrics cannot be combined with MetricName, Namespace, Statistic, ExtendedStatistic, Dimensions, Period or Unit.")
	}
	if len(in.Metrics) == 0 || len(in.Metrics) > 10 {
		return invalidParameter("The collection Metrics must have between 1 and 10 members.")
	}
	if _, err := validateQueries("Metrics", in.Metrics); err != nil {
		return err
	}
	ret, err := returnedQuery(in.Metrics)
	if err != nil {
		return err
	}
	in.Period = queryPeriod(in.Metrics, ret)
	return checkPeriod("Period", in.Period)
}

// returnedQuery is the one query of an alarm whose data the alarm watches. ReturnData defaults
// to true, so with several queries the others must say false.
func returnedQuery(queries []metricDataQuery) (*metricDataQuery, error) {
	var ret *metricDataQuery
	for i := range queries {
		if q := &queries[i]; q.ReturnData == nil || *q.ReturnData {
			if ret != nil {
				return nil, invalidParameter("Exactly one element of the Metrics list must return data (set ReturnData false on the others).")
			}
			ret = q
		}
	}
	if ret == nil {
		return nil, invalidParameter("Exactly one element of the Metrics list must return data.")
	}
	return ret, nil
}

// queryPeriod is the period an alarm query is evaluated with: its MetricStat's, its own
// Period, or else the first MetricStat query's.
func queryPeriod(queries []metricDataQuery, q *metricDataQuery) int32 {
	switch {
	case q.MetricStat != nil:
		return q.MetricStat.Period
	case q.Period != nil:
		return *q.Period
	}
	for _, other := range queries {
		if other.MetricStat != nil {
			return other.MetricStat.Period
		}
	}
	return 0
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// evaluateLocked updates an alarm's state from its metric's last EvaluationPeriods periods
// and reports whether the state changed. A change publishes to the SNS topics of the alarm's
// actions for the new state (notifyLocked); Auto Scaling and EC2 actions are not executed.
func (s *Service) evaluateLocked(a *alarm, now time.Time) bool {
	if now.Before(a.ManualUntil) {
		return false
	}
	m := &a.MetricAlarm
	period := time.Duration(m.Period) * time.Second
	end := periodStart(now, period)
	start := end.Add(-time.Duration(m.EvaluationPeriods) * period)
	stat := m.Statistic
	if stat == "" {
		stat = m.ExtendedStatistic
	}
	values := map[int64]float64{}
	if len(m.Metrics) > 0 {
		values = s.alarmQueryValues(m.Metrics, start, end)
	} else if sr := s.series[seriesKey(m.Namespace, m.MetricName, sortedDims(m.Dimensions))]; sr != nil {
		for _, b := range sr.aggregate(start, end, period, m.Unit) {
			if v, ok := b.statistic(stat); ok {
				values[b.start.Unix()] = v
			}
		}
	}
	compare := comparisons[m.ComparisonOperator]
	breaching, present := 0, 0
	var seen []string
	for t := start; t.Before(end); t = t.Add(period) {
		v, ok := values[t.Unix()]
		switch {
		case ok:
			present++
			seen = append(seen, strconv.FormatFloat(v, 'g', -1, 64))
			if compare(v, m.Threshold) {
				breaching++
			}
		case m.TreatMissingData == "breaching":
			breaching++
		}
	}
	var state, reason string
	switch {
	case breaching >= int(m.DatapointsToAlarm):
		state = "ALARM"
		reason = fmt.Sprintf("Threshold Crossed: %d out of the last %d datapoints [%s] crossed the threshold (%s %g).",
			breaching, m.EvaluationPeriods, strings.Join(seen, ", "), m.ComparisonOperator, m.Threshold)
	case present == 0 && m.TreatMissingData == "ignore":
		return false
	case present == 0 && m.TreatMissingData == "missing":
		state = "INSUFFICIENT_DATA"
		reason = fmt.Sprintf("Insufficient Data: no datapoints were received for the last %d periods.", m.EvaluationPeriods)
	default:
		state = "OK"
		reason = fmt.Sprintf("Threshold not crossed: %d out of the last %d datapoints [%s] crossed the threshold (%s %g); %d are needed to alarm.",
			breaching, m.EvaluationPeriods, strings.Join(seen, ", "), m.ComparisonOperator, m.Threshold, m.DatapointsToAlarm)
	}
	if state == m.StateValue {
		return false
	}
	old := m.StateValue
	m.StateValue, m.StateReason = state, reason
	m.StateUpdatedTimestamp, m.StateTransitionedTimestamp = now, now
	s.notifyLocked(m, old)
	return true
}

// alarmQueryValues evaluates a metric math alarm's queries over [start, end) and returns the
// returned query's datapoints; a query that cannot be evaluated yields no data.
func (s *Service) alarmQueryValues(queries []metricDataQuery, start, end time.Time) map[int64]float64 {
	exprs, err := validateQueries("Metrics", queries)
	if err != nil {
		return nil
	}
	ret, err := returnedQuery(queries)
	if err != nil {
		return nil
	}
	series, err := s.evaluateQueries(queries, exprs, start, end)
	if err != nil {
		return nil
	}
	return series[ret.Id]
}

type describeAlarmsInput struct {
	AlarmNames      []string
	AlarmNamePrefix string
	AlarmTypes      []string
	StateValue      string
	ActionPrefix    string
	MaxRecords      int32
	NextToken       string
}

type describeAlarmsOutput struct {
	MetricAlarms    []MetricAlarm
	CompositeAlarms []struct{}
	NextToken       *string
}

func (s *Service) describeAlarms(c *call) (any, error) {
	var in describeAlarmsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if len(in.AlarmNames) > 0 && in.AlarmNamePrefix != "" {
		return nil, invalidCombination("AlarmNames and AlarmNamePrefix are mutually exclusive.")
	}
	if in.MaxRecords == 0 {
		in.MaxRecords = 50
	}
	if in.MaxRecords < 1 || in.MaxRecords > 100 {
		return nil, invalidParameter("MaxRecords must be between 1 and 100.")
	}
	if in.StateValue != "" && in.StateValue != "OK" && in.StateValue != "ALARM" && in.StateValue != "INSUFFICIENT_DATA" {
		return nil, invalidParameter("The value %s for parameter StateValue is invalid.", in.StateValue)
	}
	start, err := pageOffset(in.NextToken)
	if err != nil {
		return nil, err
	}
	if err := c.authorize("DescribeAlarms", nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &describeAlarmsOutput{MetricAlarms: []MetricAlarm{}, CompositeAlarms: []struct{}{}}
	if len(in.AlarmTypes) > 0 && !slices.Contains(in.AlarmTypes, "MetricAlarm") {
		return out, nil
	}
	now := s.now().UTC()
	changed := false
	var matched []MetricAlarm
	for _, name := range sortedKeys(s.alarms) {
		a := s.alarms[name]
		if len(in.AlarmNames) > 0 && !slices.Contains(in.AlarmNames, name) || !strings.HasPrefix(name, in.AlarmNamePrefix) {
			continue
		}
		if in.ActionPrefix != "" && !slices.ContainsFunc(a.AlarmActions, func(x string) bool { return strings.HasPrefix(x, in.ActionPrefix) }) {
			continue
		}
		if s.evaluateLocked(a, now) {
			changed = true
		}
		if in.StateValue != "" && a.StateValue != in.StateValue {
			continue
		}
		matched = append(matched, a.MetricAlarm)
	}
	var page []MetricAlarm
	page, out.NextToken = pageOf(matched, start, int(in.MaxRecords))
	out.MetricAlarms = append(out.MetricAlarms, page...)
	if changed {
		if err := s.saveLocked(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type describeAlarmsForMetricInput struct {
	MetricName        string
	Namespace         string
	Statistic         string
	ExtendedStatistic string
	Dimensions        []Dimension
	Period            int32
	Unit              string
}

type describeAlarmsForMetricOutput struct {
	MetricAlarms []MetricAlarm
}

func (s *Service) describeAlarmsForMetric(c *call) (any, error) {
	var in describeAlarmsForMetricInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.MetricName == "" || in.Namespace == "" {
		return nil, missingParameter("MetricName and Namespace")
	}
	if err := c.authorize("DescribeAlarmsForMetric", nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	changed := false
	out := &describeAlarmsForMetricOutput{MetricAlarms: []MetricAlarm{}}
	want := seriesKey(in.Namespace, in.MetricName, sortedDims(in.Dimensions))
	for _, name := range sortedKeys(s.alarms) {
		a := s.alarms[name]
		if seriesKey(a.Namespace, a.MetricName, sortedDims(a.Dimensions)) != want ||
			in.Statistic != "" && a.Statistic != in.Statistic || in.ExtendedStatistic != "" && a.ExtendedStatistic != in.ExtendedStatistic ||
			in.Period != 0 && a.Period != in.Period || in.Unit != "" && a.Unit != in.Unit {
			continue
		}
		if s.evaluateLocked(a, now) {
			changed = true
		}
		out.MetricAlarms = append(out.MetricAlarms, a.MetricAlarm)
	}
	if changed {
		if err := s.saveLocked(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type alarmNamesInput struct {
	AlarmNames []string
}

// setActionsEnabled implements EnableAlarmActions and DisableAlarmActions. Actions are recorded
// but never run by the local cloud.
func (s *Service) setActionsEnabled(c *call, action string, enabled bool) (any, error) {
	var in alarmNamesInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.authorize(action, nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range in.AlarmNames {
		if a, ok := s.alarms[name]; ok { // unknown names are ignored, as CloudWatch does
			a.ActionsEnabled = enabled
		}
	}
	return nil, nil
}

func (s *Service) deleteAlarms(c *call) (any, error) {
	var in alarmNamesInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.authorize("DeleteAlarms", nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// As in CloudWatch: if any name is wrong, no alarm is deleted.
	for _, name := range in.AlarmNames {
		if _, ok := s.alarms[name]; !ok {
			return nil, resourceNotFound("Alarm %s not found", name)
		}
	}
	for _, name := range in.AlarmNames {
		delete(s.alarms, name)
	}
	return nil, nil
}

type setAlarmStateInput struct {
	AlarmName       string
	StateValue      string
	StateReason     string
	StateReasonData string
}

func (s *Service) setAlarmState(c *call) (any, error) {
	var in setAlarmStateInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.StateValue != "OK" && in.StateValue != "ALARM" && in.StateValue != "INSUFFICIENT_DATA" {
		return nil, invalidParameter("The value %s for parameter StateValue is invalid.", in.StateValue)
	}
	if in.StateReasonData != "" && !json.Valid([]byte(in.StateReasonData)) {
		return nil, awsapi.Errorf("InvalidFormat", "StateReasonData is not valid JSON.")
	}
	if err := c.authorize("SetAlarmState", nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.alarms[in.AlarmName]
	if !ok {
		return nil, resourceNotFound("Alarm %s not found", in.AlarmName)
	}
	now := s.now().UTC()
	old := a.StateValue
	if a.StateValue != in.StateValue {
		a.StateTransitionedTimestamp = now
	}
	a.StateValue, a.StateReason, a.StateUpdatedTimestamp = in.StateValue, in.StateReason, now
	period := time.Duration(a.Period) * time.Second
	a.ManualUntil = periodStart(now, period).Add(period)
	if old != a.StateValue {
		// As in CloudWatch, a state set by hand runs the alarm's actions:
		// the way to try a notification.
		s.notifyLocked(&a.MetricAlarm, old)
	}
	return nil, nil
}

func mergeTags(existing, add []Tag) []Tag {
	out := slices.Clone(existing)
	for _, t := range add {
		if i := slices.IndexFunc(out, func(e Tag) bool { return e.Key == t.Key }); i >= 0 {
			out[i] = t
		} else {
			out = append(out, t)
		}
	}
	return out
}

// alarmByARNLocked finds the alarm a tagging call names.
func (s *Service) alarmByARNLocked(arn string) (*alarm, error) {
	i := strings.Index(arn, ":alarm:")
	if i < 0 {
		return nil, resourceNotFound("The local cloud supports tags on alarms only; %s is not an alarm ARN.", arn)
	}
	a, ok := s.alarms[arn[i+len(":alarm:"):]]
	if !ok || a.AlarmArn != arn {
		return nil, resourceNotFound("Alarm %s not found", arn)
	}
	return a, nil
}

type tagResourceInput struct {
	ResourceARN string
	Tags        []Tag
	TagKeys     []string
}

var tagKeyPattern = regexp.MustCompile(`^.{1,128}$`)

func (s *Service) tagResource(c *call) (any, error) {
	var in tagResourceInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	for _, t := range in.Tags {
		if !tagKeyPattern.MatchString(t.Key) || len(t.Value) > 256 {
			return nil, invalidParameter("Tag keys must be 1-128 characters and values at most 256.")
		}
	}
	return s.onTaggedAlarm(c, "cloudwatch:TagResource", in.ResourceARN, func(a *alarm) any {
		a.Tags = mergeTags(a.Tags, in.Tags)
		return nil
	})
}

func (s *Service) untagResource(c *call) (any, error) {
	var in tagResourceInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	return s.onTaggedAlarm(c, "cloudwatch:UntagResource", in.ResourceARN, func(a *alarm) any {
		a.Tags = slices.DeleteFunc(a.Tags, func(t Tag) bool { return slices.Contains(in.TagKeys, t.Key) })
		return nil
	})
}

type listTagsOutput struct {
	Tags []Tag
}

func (s *Service) listTagsForResource(c *call) (any, error) {
	var in tagResourceInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	return s.onTaggedAlarm(c, "cloudwatch:ListTagsForResource", in.ResourceARN, func(a *alarm) any {
		return &listTagsOutput{Tags: append([]Tag{}, a.Tags...)}
	})
}

// onTaggedAlarm finishes a tagging call on the alarm arn names: it authorizes action on arn and
// runs do on the alarm with the lock held; do's result is the call's output.
func (s *Service) onTaggedAlarm(c *call, action, arn string, do func(a *alarm) any) (any, error) {
	if err := c.req.Authorize(c.ctx, action, arn, nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.alarmByARNLocked(arn)
	if err != nil {
		return nil, err
	}
	return do(a), nil
}
