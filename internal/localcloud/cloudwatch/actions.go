package cloudwatch

import (
	"encoding/json"
	"strings"
	"time"
)

// Notifier publishes a message to an SNS topic: the SNS service of the
// local cloud (sns.Service).
type Notifier interface {
	Publish(topicARN, subject, message string) (string, error)
}

// SetNotifier makes alarms execute their SNS actions: when an alarm's state
// changes, a notification in CloudWatch's format is published to each SNS
// topic of its actions for the new state (AlarmActions, OKActions,
// InsufficientDataActions) while its actions are enabled. Alarms are then
// also evaluated every interval (not only when described), so a
// notification follows a metric's crossing without anyone asking.
func (s *Service) SetNotifier(n Notifier, interval time.Duration) {
	s.mu.Lock()
	s.notifier = n
	if s.evalStop != nil || n == nil {
		s.mu.Unlock()
		return
	}
	stop := make(chan struct{})
	s.evalStop = stop
	s.mu.Unlock()
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s.evaluateAll()
			}
		}
	}()
}

// evaluateAll evaluates every alarm, saving the state when one changed.
func (s *Service) evaluateAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := s.now()
	changed := false
	for _, name := range sortedKeys(s.alarms) {
		if s.evaluateLocked(s.alarms[name], now) {
			changed = true
		}
	}
	if changed {
		if err := s.saveLocked(); err != nil {
			s.log.Error("cloudwatch: saving alarm states", "err", err)
		}
	}
}

// notifyLocked publishes an alarm's state change to the SNS topics of its
// actions for the new state, off the lock. Other action types (Auto
// Scaling, EC2, Systems Manager) are not executed.
func (s *Service) notifyLocked(m *MetricAlarm, oldState string) {
	if s.notifier == nil || !m.ActionsEnabled {
		return
	}
	var actions []string
	switch m.StateValue {
	case "ALARM":
		actions = m.AlarmActions
	case "OK":
		actions = m.OKActions
	case "INSUFFICIENT_DATA":
		actions = m.InsufficientDataActions
	}
	var topics []string
	for _, a := range actions {
		if strings.HasPrefix(a, "arn:aws:sns:") {
			topics = append(topics, a)
		}
	}
	if len(topics) == 0 {
		return
	}
	// CloudWatch's notification: the alarm, its old and new state, why,
	// and what it watches.
	trigger := map[string]any{
		"MetricName": m.MetricName, "Namespace": m.Namespace, "Statistic": strings.ToUpper(m.Statistic),
		"Period": m.Period, "EvaluationPeriods": m.EvaluationPeriods, "ComparisonOperator": m.ComparisonOperator,
		"Threshold": m.Threshold, "TreatMissingData": m.TreatMissingData, "Dimensions": m.Dimensions,
	}
	if len(m.Metrics) > 0 {
		trigger["Metrics"] = m.Metrics
	}
	body, err := json.Marshal(map[string]any{
		"AlarmName": m.AlarmName, "AlarmDescription": m.AlarmDescription, "AWSAccountId": s.account,
		"AlarmConfigurationUpdatedTimestamp": m.AlarmConfigurationUpdatedTimestamp.UTC().Format("2006-01-02T15:04:05.000+0000"),
		"NewStateValue":                      m.StateValue, "NewStateReason": m.StateReason,
		"StateChangeTime": m.StateUpdatedTimestamp.UTC().Format("2006-01-02T15:04:05.000+0000"),
		"Region":          s.region, "AlarmArn": m.AlarmArn, "OldStateValue": oldState, "Trigger": trigger,
	})
	if err != nil {
		s.log.Error("cloudwatch: rendering an alarm notification", "alarm", m.AlarmName, "err", err)
		return
	}
	subject := m.StateValue + `: "` + m.AlarmName + `" in ` + s.region
	if len(subject) > 100 {
		subject = subject[:100] // SNS's limit on subjects
	}
	n := s.notifier
	go func() {
		for _, t := range topics {
			if _, err := n.Publish(t, subject, string(body)); err != nil {
				s.log.Warn("cloudwatch: alarm action failed", "alarm", m.AlarmName, "topic", t, "err", err)
			}
		}
	}()
}
