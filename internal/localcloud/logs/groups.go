package logs

import (
	"encoding/base64"
	"slices"
	"sort"
	"strings"
)

// retentionDays are the values PutRetentionPolicy accepts.
var retentionDays = []int32{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

var logGroupClasses = []string{"STANDARD", "INFREQUENT_ACCESS", "DELIVERY"}

func (s *Service) createLogGroup(c *call) (any, error) {
	var in struct {
		LogGroupName  string            `json:"logGroupName"`
		KMSKeyID      string            `json:"kmsKeyId"`
		Tags          map[string]string `json:"tags"`
		LogGroupClass string            `json:"logGroupClass"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := checkGroupName(in.LogGroupName); err != nil {
		return nil, err
	}
	if err := c.authorize(s.groupARN(in.LogGroupName), s.groupARN(in.LogGroupName)+":*"); err != nil {
		return nil, err
	}
	if in.LogGroupClass == "" {
		in.LogGroupClass = "STANDARD"
	}
	if !slices.Contains(logGroupClasses, in.LogGroupClass) {
		return nil, invalidParameter("1 validation error detected: Value '%s' at 'logGroupClass' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, INFREQUENT_ACCESS, DELIVERY]", in.LogGroupClass)
	}
	if in.KMSKeyID != "" && !strings.HasPrefix(in.KMSKeyID, "arn:aws:kms:") {
		return nil, invalidParameter("Specified KMS key %s is not a key ARN: CloudWatch Logs takes the key's full ARN.", in.KMSKeyID)
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	if _, ok := s.groups[in.LogGroupName]; ok {
		return nil, alreadyExists("The specified log group already exists")
	}
	s.groups[in.LogGroupName] = &logGroup{Name: in.LogGroupName, Created: s.now().UnixMilli(), KMSKeyID: in.KMSKeyID, Class: in.LogGroupClass,
		Tags: in.Tags, Streams: map[string]*logStream{}}
	return nil, s.changedLocked(true)
}

type groupName struct {
	LogGroupName       string `json:"logGroupName"`
	LogGroupIdentifier string `json:"logGroupIdentifier"`
}

func (s *Service) deleteLogGroup(c *call) (any, error) {
	var in groupName
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupLocked(in.LogGroupName, "")
	if err != nil {
		return nil, err
	}
	if err := c.authorizeGroup(s, g.Name); err != nil {
		return nil, err
	}
	delete(s.groups, g.Name)
	return nil, s.changedLocked(true)
}

type groupJSON struct {
	LogGroupName      string `json:"logGroupName"`
	CreationTime      int64  `json:"creationTime"`
	RetentionInDays   *int32 `json:"retentionInDays,omitempty"`
	MetricFilterCount int    `json:"metricFilterCount"`
	Arn               string `json:"arn"`
	StoredBytes       int64  `json:"storedBytes"`
	KMSKeyID          string `json:"kmsKeyId,omitempty"`
	LogGroupClass     string `json:"logGroupClass"`
	LogGroupArn       string `json:"logGroupArn"`
}

func (s *Service) describeLogGroups(c *call) (any, error) {
	var in struct {
		LogGroupNamePrefix  string   `json:"logGroupNamePrefix"`
		LogGroupNamePattern string   `json:"logGroupNamePattern"`
		LogGroupClass       string   `json:"logGroupClass"`
		LogGroupIdentifiers []string `json:"logGroupIdentifiers"`
		Limit               *int32   `json:"limit"`
		NextToken           string   `json:"nextToken"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.authorize(s.groupARN("*")); err != nil {
		return nil, err
	}
	if in.LogGroupNamePrefix != "" && in.LogGroupNamePattern != "" {
		return nil, invalidParameter("LogGroupNamePrefix and LogGroupNamePattern are mutually exclusive parameters.")
	}
	limit, err := limitOf(in.Limit, 50, 50)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, name := range sortedKeys(s.groups) {
		g := s.groups[name]
		switch {
		case !strings.HasPrefix(name, in.LogGroupNamePrefix):
		case in.LogGroupNamePattern != "" && !strings.Contains(strings.ToLower(name), strings.ToLower(in.LogGroupNamePattern)):
		case in.LogGroupClass != "" && g.Class != in.LogGroupClass:
		case len(in.LogGroupIdentifiers) > 0 && !slices.Contains(in.LogGroupIdentifiers, name) && !slices.Contains(in.LogGroupIdentifiers, s.groupARN(name)):
		default:
			names = append(names, name)
		}
	}
	page, next, err := pageByName(names, in.NextToken, limit)
	if err != nil {
		return nil, err
	}
	out := struct {
		LogGroups []groupJSON `json:"logGroups"`
		NextToken string      `json:"nextToken,omitempty"`
	}{LogGroups: []groupJSON{}, NextToken: next}
	for _, name := range page {
		g := s.groups[name]
		s.expireLocked(g)
		j := groupJSON{LogGroupName: name, CreationTime: g.Created, Arn: s.groupARN(name) + ":*", LogGroupArn: s.groupARN(name),
			KMSKeyID: g.KMSKeyID, LogGroupClass: g.Class}
		if g.RetentionDays > 0 {
			days := g.RetentionDays
			j.RetentionInDays = &days
		}
		for _, st := range g.Streams {
			j.StoredBytes += st.Bytes
		}
		out.LogGroups = append(out.LogGroups, j)
	}
	return out, nil
}

func (s *Service) putRetentionPolicy(c *call) (any, error) {
	var in struct {
		LogGroupName    string `json:"logGroupName"`
		RetentionInDays int32  `json:"retentionInDays"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupLocked(in.LogGroupName, "")
	if err != nil {
		return nil, err
	}
	if err := c.authorizeGroup(s, g.Name); err != nil {
		return nil, err
	}
	if !slices.Contains(retentionDays, in.RetentionInDays) {
		return nil, invalidParameter("1 validation error detected: Value '%d' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: %v", in.RetentionInDays, retentionDays)
	}
	g.RetentionDays = in.RetentionInDays
	s.expireLocked(g)
	return nil, s.changedLocked(true)
}

func (s *Service) deleteRetentionPolicy(c *call) (any, error) {
	var in groupName
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupLocked(in.LogGroupName, "")
	if err != nil {
		return nil, err
	}
	if err := c.authorizeGroup(s, g.Name); err != nil {
		return nil, err
	}
	g.RetentionDays = 0
	return nil, s.changedLocked(true)
}

type streamName struct {
	LogGroupName  string `json:"logGroupName"`
	LogStreamName string `json:"logStreamName"`
}

func (s *Service) createLogStream(c *call) (any, error) {
	var in streamName
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupLocked(in.LogGroupName, "")
	if err != nil {
		return nil, err
	}
	if !streamNamePattern.MatchString(in.LogStreamName) {
		return nil, invalidParameter("1 validation error detected: Value '%s' at 'logStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]* and have length between 1 and 512", in.LogStreamName)
	}
	if err := c.authorize(s.streamARN(g.Name, in.LogStreamName)); err != nil {
		return nil, err
	}
	if _, ok := g.Streams[in.LogStreamName]; ok {
		return nil, alreadyExists("The specified log stream already exists")
	}
	g.Streams[in.LogStreamName] = &logStream{Name: in.LogStreamName, Created: s.now().UnixMilli()}
	return nil, s.changedLocked(true)
}

func (s *Service) deleteLogStream(c *call) (any, error) {
	var in streamName
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupLocked(in.LogGroupName, "")
	if err != nil {
		return nil, err
	}
	st, err := g.streamLocked(in.LogStreamName)
	if err != nil {
		return nil, err
	}
	if err := c.authorize(s.streamARN(g.Name, st.Name)); err != nil {
		return nil, err
	}
	delete(g.Streams, st.Name)
	return nil, s.changedLocked(true)
}

type streamJSON struct {
	LogStreamName       string `json:"logStreamName"`
	CreationTime        int64  `json:"creationTime"`
	FirstEventTimestamp *int64 `json:"firstEventTimestamp,omitempty"`
	LastEventTimestamp  *int64 `json:"lastEventTimestamp,omitempty"`
	LastIngestionTime   *int64 `json:"lastIngestionTime,omitempty"`
	Arn                 string `json:"arn"`
	StoredBytes         int64  `json:"storedBytes"`
}

func (s *Service) describeLogStreams(c *call) (any, error) {
	var in struct {
		groupName
		LogStreamNamePrefix string `json:"logStreamNamePrefix"`
		OrderBy             string `json:"orderBy"`
		Descending          bool   `json:"descending"`
		Limit               *int32 `json:"limit"`
		NextToken           string `json:"nextToken"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupLocked(in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	if err := c.authorizeGroup(s, g.Name); err != nil {
		return nil, err
	}
	switch in.OrderBy {
	case "", "LogStreamName":
	case "LastEventTime":
		if in.LogStreamNamePrefix != "" {
			return nil, invalidParameter("Cannot order by LastEventTime with a logStreamNamePrefix.")
		}
	default:
		return nil, invalidParameter("1 validation error detected: Value '%s' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]", in.OrderBy)
	}
	limit, err := limitOf(in.Limit, 50, 50)
	if err != nil {
		return nil, err
	}
	s.expireLocked(g)
	var names []string
	for _, name := range sortedKeys(g.Streams) {
		if strings.HasPrefix(name, in.LogStreamNamePrefix) {
			names = append(names, name)
		}
	}
	if in.OrderBy == "LastEventTime" {
		sort.SliceStable(names, func(i, j int) bool { return lastEvent(g.Streams[names[i]]) < lastEvent(g.Streams[names[j]]) })
	}
	if in.Descending {
		slices.Reverse(names)
	}
	page, next, err := pageByOffset(names, in.NextToken, limit)
	if err != nil {
		return nil, err
	}
	out := struct {
		LogStreams []streamJSON `json:"logStreams"`
		NextToken  string       `json:"nextToken,omitempty"`
	}{LogStreams: []streamJSON{}, NextToken: next}
	for _, name := range page {
		st := g.Streams[name]
		j := streamJSON{LogStreamName: name, CreationTime: st.Created, Arn: s.streamARN(g.Name, name), StoredBytes: st.Bytes}
		if n := len(st.Events); n > 0 {
			first, last, ingest := st.Events[0].Timestamp, st.Events[n-1].Timestamp, st.LastIngest
			j.FirstEventTimestamp, j.LastEventTimestamp, j.LastIngestionTime = &first, &last, &ingest
		}
		out.LogStreams = append(out.LogStreams, j)
	}
	return out, nil
}

func lastEvent(st *logStream) int64 {
	if len(st.Events) == 0 {
		return 0
	}
	return st.Events[len(st.Events)-1].Timestamp
}

// limitOf reads an optional limit between 1 and maximum.
func limitOf(limit *int32, def, maximum int32) (int, error) {
	if limit == nil {
		return int(def), nil
	}
	if *limit < 1 || *limit > maximum {
		return 0, invalidParameter("1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and %d", *limit, maximum)
	}
	return int(*limit), nil
}

// pageByName pages sorted names: the token is the first name of the next page.
func pageByName(names []string, token string, limit int) ([]string, string, error) {
	start := 0
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			return nil, "", invalidParameter("The specified nextToken is invalid.")
		}
		start = sort.SearchStrings(names, string(raw))
	}
	end := min(start+limit, len(names))
	next := ""
	if end < len(names) {
		next = base64.RawURLEncoding.EncodeToString([]byte(names[end]))
	}
	return names[start:end], next, nil
}

// pageByOffset pages a list in an order that is not by name.
func pageByOffset(names []string, token string, limit int) ([]string, string, error) {
	start := 0
	if token != "" {
		n, err := decodeOffset(token)
		if err != nil || n > len(names) {
			return nil, "", invalidParameter("The specified nextToken is invalid.")
		}
		start = n
	}
	end := min(start+limit, len(names))
	next := ""
	if end < len(names) {
		next = encodeOffset(end)
	}
	return names[start:end], next, nil
}

// Tags.

func checkTags(tags map[string]string) error {
	if len(tags) > 50 {
		return invalidParameter("A log group can have at most 50 tags.")
	}
	for k, v := range tags {
		if k == "" || len(k) > 128 || len(v) > 256 {
			return invalidParameter("Tag keys must be 1-128 characters and values at most 256 characters: %q.", k)
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return invalidParameter("Tag keys beginning with aws: are reserved: %q.", k)
		}
	}
	return nil
}

// groupOfARN finds the log group an ARN of the tagging API names.
func (s *Service) groupOfARN(arn string) (*logGroup, error) {
	name, ok := strings.CutPrefix(arn, s.groupARN(""))
	if !ok || name == "" {
		return nil, invalidParameter("Invalid resource ARN %q: the local cloud tags log groups (%s<name>).", arn, s.groupARN(""))
	}
	return s.groupLocked(strings.TrimSuffix(name, ":*"), "")
}

func (s *Service) tag(c *call, g *logGroup, tags map[string]string) (any, error) {
	if err := c.authorizeGroup(s, g.Name); err != nil {
		return nil, err
	}
	merged := map[string]string{}
	for k, v := range g.Tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[k] = v
	}
	if err := checkTags(merged); err != nil {
		return nil, err
	}
	g.Tags = merged
	return nil, s.changedLocked(true)
}

func (s *Service) untag(c *call, g *logGroup, keys []string) (any, error) {
	if err := c.authorizeGroup(s, g.Name); err != nil {
		return nil, err
	}
	for _, k := range keys {
		delete(g.Tags, k)
	}
	return nil, s.changedLocked(true)
}

func (s *Service) listTags(c *call, g *logGroup) (any, error) {
	if err := c.authorizeGroup(s, g.Name); err != nil {
		return nil, err
	}
	tags := g.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return struct {
		Tags map[string]string `json:"tags"`
	}{tags}, nil
}

func (s *Service) tagResource(c *call) (any, error) {
	var in struct {
		ResourceArn string            `json:"resourceArn"`
		Tags        map[string]string `json:"tags"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupOfARN(in.ResourceArn)
	if err != nil {
		return nil, err
	}
	return s.tag(c, g, in.Tags)
}

func (s *Service) untagResource(c *call) (any, error) {
	var in struct {
		ResourceArn string   `json:"resourceArn"`
		TagKeys     []string `json:"tagKeys"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupOfARN(in.ResourceArn)
	if err != nil {
		return nil, err
	}
	return s.untag(c, g, in.TagKeys)
}

func (s *Service) listTagsForResource(c *call) (any, error) {
	var in struct {
		ResourceArn string `json:"resourceArn"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupOfARN(in.ResourceArn)
	if err != nil {
		return nil, err
	}
	return s.listTags(c, g)
}

func (s *Service) tagLogGroup(c *call) (any, error) {
	var in struct {
		LogGroupName string            `json:"logGroupName"`
		Tags         map[string]string `json:"tags"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupLocked(in.LogGroupName, "")
	if err != nil {
		return nil, err
	}
	return s.tag(c, g, in.Tags)
}

func (s *Service) untagLogGroup(c *call) (any, error) {
	var in struct {
		LogGroupName string   `json:"logGroupName"`
		Tags         []string `json:"tags"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupLocked(in.LogGroupName, "")
	if err != nil {
		return nil, err
	}
	return s.untag(c, g, in.Tags)
}

func (s *Service) listTagsLogGroup(c *call) (any, error) {
	var in groupName
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	g, err := s.groupLocked(in.LogGroupName, "")
	if err != nil {
		return nil, err
	}
	return s.listTags(c, g)
}
