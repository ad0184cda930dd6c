package cloudwatch

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

type dashboard struct {
	Name     string    `json:"name"`
	Body     string    `json:"body"`
	Modified time.Time `json:"modified"`
}

func (s *Service) dashboardARN(name string) string {
	return "arn:aws:cloudwatch::" + s.account + ":dashboard/" + name
}

var dashboardNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

type putDashboardInput struct {
	DashboardName string
	DashboardBody string
}

type putDashboardOutput struct {
	DashboardValidationMessages []struct{}
}

// validateDashboardBody checks what CloudWatch checks first: a JSON object whose widgets, if
// present, are a list of objects. Widget contents are not validated by the local cloud.
func validateDashboardBody(body string) error {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return awsapi.Errorf("InvalidParameterInput", "The field DashboardBody must be a valid JSON object: %v", err)
	}
	if raw, ok := doc["widgets"]; ok {
		var widgets []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &widgets); err != nil {
			return awsapi.Errorf("InvalidParameterInput", "The field widgets must be a list of widget objects.")
		}
	}
	return nil
}

func (s *Service) putDashboard(c *call) (any, error) {
	var in putDashboardInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if !dashboardNamePattern.MatchString(in.DashboardName) {
		return nil, invalidParameter("The value %q for parameter DashboardName is invalid: use 1-255 letters, digits, - and _.", in.DashboardName)
	}
	if in.DashboardBody == "" {
		return nil, missingParameter("DashboardBody")
	}
	if err := validateDashboardBody(in.DashboardBody); err != nil {
		return nil, err
	}
	if err := c.req.Authorize(c.ctx, "cloudwatch:PutDashboard", s.dashboardARN(in.DashboardName), nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dashboards[in.DashboardName] = &dashboard{Name: in.DashboardName, Body: in.DashboardBody, Modified: s.now().UTC()}
	return &putDashboardOutput{DashboardValidationMessages: []struct{}{}}, nil
}

type dashboardNameInput struct {
	DashboardName  string
	DashboardNames []string
}

type getDashboardOutput struct {
	DashboardArn  string
	DashboardBody string
	DashboardName string
}

func (s *Service) getDashboard(c *call) (any, error) {
	var in dashboardNameInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if err := c.req.Authorize(c.ctx, "cloudwatch:GetDashboard", s.dashboardARN(in.DashboardName), nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dashboards[in.DashboardName]
	if !ok {
		return nil, resourceNotFound("Dashboard %s does not exist", in.DashboardName)
	}
	return &getDashboardOutput{DashboardArn: s.dashboardARN(d.Name), DashboardBody: d.Body, DashboardName: d.Name}, nil
}

type listDashboardsInput struct {
	DashboardNamePrefix string
	NextToken           string
}

type dashboardEntry struct {
	DashboardName string
	DashboardArn  string
	LastModified  time.Time
	Size          int64
}

type listDashboardsOutput struct {
	DashboardEntries []dashboardEntry
	NextToken        *string
}

const listDashboardsPage = 1000

func (s *Service) listDashboards(c *call) (any, error) {
	var in listDashboardsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	start, err := pageOffset(in.NextToken)
	if err != nil {
		return nil, err
	}
	if err := c.authorize("ListDashboards", nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, name := range sortedKeys(s.dashboards) {
		if strings.HasPrefix(name, in.DashboardNamePrefix) {
			names = append(names, name)
		}
	}
	out := &listDashboardsOutput{DashboardEntries: []dashboardEntry{}}
	var page []string
	page, out.NextToken = pageOf(names, start, listDashboardsPage)
	for _, name := range page {
		d := s.dashboards[name]
		out.DashboardEntries = append(out.DashboardEntries, dashboardEntry{DashboardName: d.Name, DashboardArn: s.dashboardARN(d.Name), LastModified: d.Modified, Size: int64(len(d.Body))})
	}
	return out, nil
}

func (s *Service) deleteDashboards(c *call) (any, error) {
	var in dashboardNameInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if len(in.DashboardNames) == 0 {
		return nil, missingParameter("DashboardNames")
	}
	if err := c.authorize("DeleteDashboards", nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range in.DashboardNames {
		if _, ok := s.dashboards[name]; !ok {
			return nil, resourceNotFound("Dashboard %s does not exist", name)
		}
	}
	for _, name := range in.DashboardNames {
		delete(s.dashboards, name)
	}
	return nil, nil
}
