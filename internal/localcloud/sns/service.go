// Package sns emulates a minimal Amazon SNS (awsQuery protocol) for the local
// cloud: topics, subscriptions and Publish, enough for CloudWatch alarms to
// notify someone. Messages published to a topic are delivered to its HTTP and
// HTTPS subscribers as SNS posts them (a JSON notification with Type,
// MessageId, TopicArn, Subject, Message, Timestamp), and every topic keeps
// its last messages, which ListPublished returns (for tests and the demo).
package sns

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

const xmlns = "http://sns.amazonaws.com/doc/2010-03-31/"

// keptMessages is how many published messages a topic keeps.
const keptMessages = 100

// Service is the emulated SNS of one account.
type Service struct {
	account   string
	region    string
	statePath string
	log       *slog.Logger
	now       func() time.Time
	client    *http.Client

	mu     sync.Mutex
	topics map[string]*topic // by ARN
}

var _ awsapi.Service = (*Service)(nil)

type topic struct {
	ARN           string            `json:"arn"`
	Name          string            `json:"name"`
	Attributes    map[string]string `json:"attributes,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
	Subscriptions []*subscription   `json:"subscriptions,omitempty"`
	Published     []Message         `json:"published,omitempty"`
}

type subscription struct {
	ARN      string `json:"arn"`
	Protocol string `json:"protocol"`
	Endpoint string `json:"endpoint"`
}

// Message is one published message.
type Message struct {
	MessageID string    `json:"message_id"`
	Subject   string    `json:"subject,omitempty"`
	Message   string    `json:"message"`
	Time      time.Time `json:"time"`
}

// New returns the SNS service with its state in env.StateDir.
func New(env awsapi.Env) (*Service, error) {
	env = env.WithDefaults()
	s := &Service{account: env.Account, region: env.Region, statePath: filepath.Join(env.StateDir, "sns.json"),
		log: env.Logger, now: env.Now, client: &http.Client{Timeout: 5 * time.Second}, topics: map[string]*topic{}}
	b, err := os.ReadFile(s.statePath)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return nil, fmt.Errorf("sns: reading state: %w", err)
	default:
		var topics []*topic
		if err := json.Unmarshal(b, &topics); err != nil {
			return nil, fmt.Errorf("sns: reading state %s: %w", s.statePath, err)
		}
		for _, t := range topics {
			s.topics[t.ARN] = t
		}
	}
	return s, nil
}

// saveLocked writes the state; the caller holds s.mu.
func (s *Service) saveLocked() error {
	var topics []*topic
	for _, arn := range slices.Sorted(mapsKeys(s.topics)) {
		topics = append(topics, s.topics[arn])
	}
	b, err := json.Marshal(topics)
	if err != nil {
		return err
	}
	tmp := s.statePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("sns: saving state: %w", err)
	}
	return os.Rename(tmp, s.statePath)
}

func mapsKeys(m map[string]*topic) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

var topicName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

// Handle serves one SNS request.
func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error) {
	if req.Protocol != awsapi.ProtocolQuery {
		return nil, awsapi.Errorf("InvalidAction", "SNS speaks the awsQuery protocol only")
	}
	p := req.Params
	region := req.Region
	if region == "" {
		region = s.region
	}
	arnOf := func(name string) string { return "arn:aws:sns:" + region + ":" + s.account + ":" + name }
	authorize := func(resource string) error { return req.Authorize(ctx, "sns:"+req.Action, resource, nil) }

	switch req.Action {
	case "CreateTopic":
		name := p.Get("Name")
		if !topicName.MatchString(name) {
			return nil, awsapi.Errorf("InvalidParameter", "Invalid parameter: Topic Name")
		}
		arn := arnOf(name)
		if err := authorize(arn); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.topics[arn]; !ok {
			s.topics[arn] = &topic{ARN: arn, Name: name, Attributes: members(p, "Attributes.entry", "key", "value"), Tags: members(p, "Tags.member", "Key", "Value")}
			if err := s.saveLocked(); err != nil {
				return nil, err
			}
		}
		return awsapi.QueryResponse(req, xmlns, struct {
			TopicArn string `xml:"TopicArn"`
		}{arn})
	case "DeleteTopic":
		arn := p.Get("TopicArn")
		if err := authorize(arn); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.topics, arn) // deleting a missing topic succeeds, as in SNS
		if err := s.saveLocked(); err != nil {
			return nil, err
		}
		return awsapi.QueryResponse(req, xmlns, nil)
	case "ListTopics":
		if err := authorize("arn:aws:sns:" + region + ":" + s.account + ":*"); err != nil {
			return nil, err
		}
		s.mu.Lock()
		arns := slices.Sorted(mapsKeys(s.topics))
		s.mu.Unlock()
		page, next, err := paginate(arns, p.Get("NextToken"))
		if err != nil {
			return nil, err
		}
		type member struct {
			TopicArn string `xml:"TopicArn"`
		}
		var res struct {
			Topics    []member `xml:"Topics>member"`
			NextToken string   `xml:"NextToken,omitempty"`
		}
		for _, a := range page {
			res.Topics = append(res.Topics, member{a})
		}
		res.NextToken = next
		return awsapi.QueryResponse(req, xmlns, res)
	case "GetTopicAttributes":
		arn := p.Get("TopicArn")
		if err := authorize(arn); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		t, err := s.topicLocked(arn)
		if err != nil {
			return nil, err
		}
		attrs := map[string]string{"TopicArn": t.ARN, "Owner": s.account, "DisplayName": t.Attributes["DisplayName"],
			"SubscriptionsConfirmed": strconv.Itoa(len(t.Subscriptions)), "SubscriptionsPending": "0", "SubscriptionsDeleted": "0"}
		for k, v := range t.Attributes {
			attrs[k] = v
		}
		type entry struct {
			Key   string `xml:"key"`
			Value string `xml:"value"`
		}
		var res struct {
			Attributes []entry `xml:"Attributes>entry"`
		}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range attrs {
				if !yield(k) {
					return
				}
			}
		}) {
			res.Attributes = append(res.Attributes, entry{k, attrs[k]})
		}
		return awsapi.QueryResponse(req, xmlns, res)
	case "Subscribe":
		arn := p.Get("TopicArn")
		if err := authorize(arn); err != nil {
			return nil, err
		}
		proto, endpoint := p.Get("Protocol"), p.Get("Endpoint")
		if err := checkEndpoint(proto, endpoint); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		t, err := s.topicLocked(arn)
		if err != nil {
			return nil, err
		}
		var sub *subscription
		for _, existing := range t.Subscriptions {
			if existing.Protocol == proto && existing.Endpoint == endpoint {
				sub = existing // SNS answers a repeated Subscribe with the same subscription
			}
		}
		if sub == nil {
			sub = &subscription{ARN: arn + ":" + newUUID(), Protocol: proto, Endpoint: endpoint}
			t.Subscriptions = append(t.Subscriptions, sub)
			if err := s.saveLocked(); err != nil {
				return nil, err
			}
		}
		return awsapi.QueryResponse(req, xmlns, struct {
			SubscriptionArn string `xml:"SubscriptionArn"`
		}{sub.ARN})
	case "Unsubscribe":
		subARN := p.Get("SubscriptionArn")
		topicARN := subARN[:max(0, strings.LastIndexByte(subARN, ':'))]
		if err := authorize(topicARN); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if t, ok := s.topics[topicARN]; ok {
			t.Subscriptions = slices.DeleteFunc(t.Subscriptions, func(x *subscription) bool { return x.ARN == subARN })
			if err := s.saveLocked(); err != nil {
				return nil, err
			}
		}
		return awsapi.QueryResponse(req, xmlns, nil)
	case "ListSubscriptionsByTopic":
		arn := p.Get("TopicArn")
		if err := authorize(arn); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		t, err := s.topicLocked(arn)
		if err != nil {
			return nil, err
		}
		type member struct {
			SubscriptionArn string `xml:"SubscriptionArn"`
			Owner           string `xml:"Owner"`
			Protocol        string `xml:"Protocol"`
			Endpoint        string `xml:"Endpoint"`
			TopicArn        string `xml:"TopicArn"`
		}
		var res struct {
			Subscriptions []member `xml:"Subscriptions>member"`
		}
		for _, sub := range t.Subscriptions {
			res.Subscriptions = append(res.Subscriptions, member{sub.ARN, s.account, sub.Protocol, sub.Endpoint, t.ARN})
		}
		return awsapi.QueryResponse(req, xmlns, res)
	case "Publish":
		arn := p.Get("TopicArn")
		if arn == "" {
			arn = p.Get("TargetArn")
		}
		if err := authorize(arn); err != nil {
			return nil, err
		}
		msg := p.Get("Message")
		if msg == "" {
			return nil, awsapi.Errorf("InvalidParameter", "Invalid parameter: Empty message")
		}
		if len(msg) > 256*1024 {
			return nil, awsapi.Errorf("InvalidParameter", "Invalid parameter: Message too long")
		}
		id, err := s.Publish(arn, p.Get("Subject"), msg)
		if err != nil {
			return nil, err
		}
		return awsapi.QueryResponse(req, xmlns, struct {
			MessageID string `xml:"MessageId"`
		}{id})
	default:
		return nil, awsapi.Errorf("InvalidAction", "The local cloud does not implement SNS action %s", req.Action)
	}
}

func (s *Service) topicLocked(arn string) (*topic, error) {
	t, ok := s.topics[arn]
	if !ok {
		return nil, &awsapi.Error{Code: "NotFound", Message: "Topic does not exist", Status: http.StatusNotFound}
	}
	return t, nil
}

// Publish publishes a message to a topic, as the Publish call and
// CloudWatch alarm actions do: kept with the topic's last messages and
// posted to its HTTP and HTTPS subscribers (each in its own goroutine, so a
// slow subscriber delays nobody). It returns the message id.
func (s *Service) Publish(topicARN, subject, message string) (string, error) {
	s.mu.Lock()
	t, err := s.topicLocked(topicARN)
	if err != nil {
		s.mu.Unlock()
		return "", err
	}
	m := Message{MessageID: newUUID(), Subject: subject, Message: message, Time: s.now().UTC()}
	t.Published = append(t.Published, m)
	if len(t.Published) > keptMessages {
		t.Published = slices.Delete(t.Published, 0, len(t.Published)-keptMessages)
	}
	subs := slices.Clone(t.Subscriptions)
	err = s.saveLocked()
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	for _, sub := range subs {
		if sub.Protocol == "http" || sub.Protocol == "https" {
			go s.deliver(topicARN, sub, m)
		}
	}
	return m.MessageID, nil
}

// deliver posts a notification to an HTTP(S) subscriber as SNS does,
// without SNS's signature (the local cloud has no signing certificate).
func (s *Service) deliver(topicARN string, sub *subscription, m Message) {
	body, _ := json.Marshal(map[string]string{
		"Type": "Notification", "MessageId": m.MessageID, "TopicArn": topicARN, "Subject": m.Subject,
		"Message": m.Message, "Timestamp": m.Time.Format("2006-01-02T15:04:05.000Z"),
	})
	req, err := http.NewRequest(http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		s.log.Warn("sns: delivering a notification", "subscription", sub.ARN, "err", err)
		return
	}
	req.Header.Set("Content-Type", "text/plain; charset=UTF-8")
	req.Header.Set("x-amz-sns-message-type", "Notification")
	req.Header.Set("x-amz-sns-message-id", m.MessageID)
	req.Header.Set("x-amz-sns-topic-arn", topicARN)
	req.Header.Set("x-amz-sns-subscription-arn", sub.ARN)
	resp, err := s.client.Do(req)
	if err != nil {
		s.log.Warn("sns: delivering a notification", "subscription", sub.ARN, "err", err)
		return
	}
	resp.Body.Close()
}

// ListPublished returns the messages a topic kept, oldest first.
func (s *Service) ListPublished(topicARN string) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.topicLocked(topicARN)
	if err != nil {
		return nil, err
	}
	return slices.Clone(t.Published), nil
}

// checkEndpoint checks a subscription as SNS does for the protocols the
// local cloud knows; other SNS protocols are refused rather than silently
// never delivered.
func checkEndpoint(proto, endpoint string) error {
	switch proto {
	case "http", "https":
		if !strings.HasPrefix(endpoint, proto+"://") {
			return awsapi.Errorf("InvalidParameter", "Invalid parameter: Endpoint must match the specified protocol")
		}
	case "email", "email-json":
		if !strings.Contains(endpoint, "@") {
			return awsapi.Errorf("InvalidParameter", "Invalid parameter: Email address")
		}
	default:
		return awsapi.Errorf("InvalidParameter", "Invalid parameter: the local cloud delivers to http, https (and records email) subscriptions, not %q", proto)
	}
	return nil
}

// members reads an awsQuery map or list of pairs: prefix.N.key / prefix.N.value.
func members(p map[string][]string, prefix, key, value string) map[string]string {
	out := map[string]string{}
	for i := 1; ; i++ {
		k := first(p[fmt.Sprintf("%s.%d.%s", prefix, i, key)])
		if k == "" {
			break
		}
		out[k] = first(p[fmt.Sprintf("%s.%d.%s", prefix, i, value)])
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// paginate returns a page of at most 100 items after the token.
func paginate(items []string, token string) (page []string, next string, err error) {
	start := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", awsapi.Errorf("InvalidParameter", "Invalid parameter: NextToken")
		}
		start = n
	}
	end := min(len(items), start+100)
	if end < len(items) {
		next = strconv.Itoa(end)
	}
	return items[start:end], next, nil
}

func newUUID() string {
	id := awsapi.NewID(32)
	return id[0:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:32]
}
