package audit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Outcome is what an admin request did to one of its resources: the
// resource as the request named it and the error code's name (NONE when
// the change was made).
type Outcome struct {
	Resource string `json:"resource"`
	Error    string `json:"error"`
}

// String is the outcome as text handlers print it.
func (o Outcome) String() string { return o.Resource + "=" + o.Error }

// adminAPIs are the requests that change the cluster: topics, partitions,
// records, configs, ACLs, SCRAM users, quotas, reassignments, leaders,
// groups and their offsets, and brokers unregistered. Their results are audited, whoever sent them.
var adminAPIs = map[int16]bool{
	19: true, // CreateTopics
	20: true, // DeleteTopics
	21: true, // DeleteRecords
	30: true, // CreateAcls
	31: true, // DeleteAcls
	33: true, // AlterConfigs
	37: true, // CreatePartitions
	42: true, // DeleteGroups
	43: true, // ElectLeaders
	44: true, // IncrementalAlterConfigs
	45: true, // AlterPartitionReassignments
	47: true, // OffsetDelete
	49: true, // AlterClientQuotas
	51: true, // AlterUserScramCredentials
	64: true, // UnregisterBroker
}

// AdminAPI reports whether requests of key are admin operations whose
// results are audited.
func AdminAPI(key int16) bool { return adminAPIs[key] }

// Result writes the result of an admin request (AdminAPI): who sent it,
// from where, and per resource the outcome, at INFO when every resource
// changed and WARN otherwise. It follows the decision lines of Record, so
// the trail says both what was allowed and what then happened (a topic
// that did not exist, a config value refused). Validate-only requests are
// marked so. Nothing secret is written: SCRAM credentials appear by user
// name only.
func (l *Logger) Result(ctx context.Context, r Request, req kmsg.Request, resp kmsg.Response) {
	if !AdminAPI(r.APIKey) || req == nil || resp == nil {
		return
	}
	outcomes := Outcomes(req, resp)
	failed := 0
	for _, o := range outcomes {
		if o.Error != "NONE" {
			failed++
		}
	}
	level := slog.LevelInfo
	if failed > 0 {
		level = slog.LevelWarn
	}
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.LogAttrs(ctx, level, "admin request",
		slog.String("principal", r.Principal),
		slog.String("client", r.Client.String()),
		slog.String("listener", r.Listener),
		slog.String("api", kmsg.NameForKey(r.APIKey)),
		slog.Int("api_key", int(r.APIKey)),
		slog.Bool("validate_only", validateOnly(req)),
		slog.Any("results", outcomes),
		slog.Int("failed", failed),
	)
}

func validateOnly(req kmsg.Request) bool {
	switch q := req.(type) {
	case *kmsg.CreateTopicsRequest:
		return q.ValidateOnly
	case *kmsg.CreatePartitionsRequest:
		return q.ValidateOnly
	case *kmsg.AlterConfigsRequest:
		return q.ValidateOnly
	case *kmsg.IncrementalAlterConfigsRequest:
		return q.ValidateOnly
	case *kmsg.AlterClientQuotasRequest:
		return q.ValidateOnly
	}
	return false
}

func codeName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	if err := kerr.ErrorForCode(code); err != nil {
		if ke, ok := err.(*kerr.Error); ok {
			return ke.Message
		}
		return err.Error()
	}
	return fmt.Sprintf("error %d", code)
}

// Outcomes pairs an admin response's per-resource error codes with the
// resources they are about. A request-level error code (ElectLeaders,
// AlterPartitionReassignments, OffsetDelete) is the outcome of every
// resource the request named when the response names none.
func Outcomes(req kmsg.Request, resp kmsg.Response) []Outcome {
	var out []Outcome
	add := func(res string, code int16) { out = append(out, Outcome{Resource: res, Error: codeName(code)}) }
	partition := func(topic string, p int32) string { return fmt.Sprintf("%s-%d", topic, p) }
	switch rs := resp.(type) {
	case *kmsg.CreateTopicsResponse:
		for _, t := range rs.Topics {
			add("topic:"+t.Topic, t.ErrorCode)
		}
	case *kmsg.DeleteTopicsResponse:
		for _, t := range rs.Topics {
			name := ""
			if t.Topic != nil {
				name = *t.Topic
			} else {
				name = fmt.Sprintf("%x", t.TopicID)
			}
			add("topic:"+name, t.ErrorCode)
		}
	case *kmsg.DeleteRecordsResponse:
		for _, t := range rs.Topics {
			for _, p := range t.Partitions {
				add("partition:"+partition(t.Topic, p.Partition), p.ErrorCode)
			}
		}
	case *kmsg.CreateACLsResponse:
		q, _ := req.(*kmsg.CreateACLsRequest)
		for i, res := range rs.Results {
			name := fmt.Sprintf("acl #%d", i)
			if q != nil && i < len(q.Creations) {
				c := q.Creations[i]
				name = fmt.Sprintf("acl:%s:%s:%s %s %s %s from %s", c.ResourceType, c.ResourcePatternType, c.ResourceName,
					c.Principal, c.PermissionType, c.Operation, c.Host)
			}
			add(name, res.ErrorCode)
		}
	case *kmsg.DeleteACLsResponse:
		q, _ := req.(*kmsg.DeleteACLsRequest)
		for i, res := range rs.Results {
			name := fmt.Sprintf("acl filter #%d", i)
			if q != nil && i < len(q.Filters) {
				f := q.Filters[i]
				name = fmt.Sprintf("acl filter:%s:%s:%s %s %s %s from %s (%d matched)", f.ResourceType, f.ResourcePatternType,
					deref(f.ResourceName), deref(f.Principal), f.PermissionType, f.Operation, deref(f.Host), len(res.MatchingACLs))
			}
			add(name, res.ErrorCode)
		}
	case *kmsg.AlterConfigsResponse:
		for _, res := range rs.Resources {
			add(configResource(res.ResourceType, res.ResourceName), res.ErrorCode)
		}
	case *kmsg.IncrementalAlterConfigsResponse:
		for _, res := range rs.Resources {
			add(configResource(res.ResourceType, res.ResourceName), res.ErrorCode)
		}
	case *kmsg.CreatePartitionsResponse:
		for _, t := range rs.Topics {
			add("topic:"+t.Topic, t.ErrorCode)
		}
	case *kmsg.DeleteGroupsResponse:
		for _, g := range rs.Groups {
			add("group:"+g.Group, g.ErrorCode)
		}
	case *kmsg.ElectLeadersResponse:
		for _, t := range rs.Topics {
			for _, p := range t.Partitions {
				add("partition:"+partition(t.Topic, p.Partition), p.ErrorCode)
			}
		}
		if len(out) == 0 {
			add("cluster", rs.ErrorCode)
		}
	case *kmsg.AlterPartitionAssignmentsResponse:
		for _, t := range rs.Topics {
			for _, p := range t.Partitions {
				code := p.ErrorCode
				if code == 0 {
					code = rs.ErrorCode
				}
				add("partition:"+partition(t.Topic, p.Partition), code)
			}
		}
		if len(out) == 0 {
			add("cluster", rs.ErrorCode)
		}
	case *kmsg.OffsetDeleteResponse:
		group := ""
		if q, ok := req.(*kmsg.OffsetDeleteRequest); ok {
			group = q.Group
		}
		for _, t := range rs.Topics {
			for _, p := range t.Partitions {
				code := p.ErrorCode
				if code == 0 {
					code = rs.ErrorCode
				}
				add("group:"+group+" offsets:"+partition(t.Topic, p.Partition), code)
			}
		}
		if len(out) == 0 {
			add("group:"+group, rs.ErrorCode)
		}
	case *kmsg.AlterClientQuotasResponse:
		for _, e := range rs.Entries {
			var parts []string
			for _, en := range e.Entity {
				name := "<default>"
				if en.Name != nil {
					name = *en.Name
				}
				parts = append(parts, en.Type+"="+name)
			}
			add("quota:"+strings.Join(parts, ","), e.ErrorCode)
		}
	case *kmsg.UnregisterBrokerResponse:
		name := "broker"
		if q, ok := req.(*kmsg.UnregisterBrokerRequest); ok {
			name = fmt.Sprintf("broker:%d", q.BrokerID)
		}
		add(name, rs.ErrorCode)
	case *kmsg.AlterUserSCRAMCredentialsResponse:
		for _, u := range rs.Results {
			add("user:"+u.User, u.ErrorCode)
		}
	}
	return out
}

func configResource(t kmsg.ConfigResourceType, name string) string {
	kind := strings.ToLower(t.String())
	if name == "" {
		return kind + ":<default>"
	}
	return kind + ":" + name
}

func deref(s *string) string {
	if s == nil {
		return "*"
	}
	return *s
}
