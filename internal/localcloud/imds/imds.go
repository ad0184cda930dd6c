// Package imds serves the EC2 instance metadata service (IMDSv2) of one emulated instance on
// its own loopback port: the token flow (PUT /latest/api/token), meta-data, user data, the
// instance identity document and role credentials, read live from the EC2 state so changes
// (security groups, tags, attached volumes) show as they do on AWS.
package imds

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Metadata is what the metadata service knows about its instance at one moment.
type Metadata struct {
	InstanceID    string
	ImageID       string
	InstanceType  string
	Architecture  string // x86_64 | arm64
	AccountID     string
	Region        string
	AZ            string
	AZID          string
	PrivateIP     string
	Hostname      string // ip-127-16-1-4.ec2.internal
	ReservationID string
	LaunchIndex   int
	PendingTime   time.Time
	UserData      []byte // decoded; nil when none

	HTTPTokensRequired bool // MetadataOptions.HttpTokens=required
	EndpointDisabled   bool // MetadataOptions.HttpEndpoint=disabled: every request is refused
	MetadataTags       bool // MetadataOptions.InstanceMetadataTags=enabled
	Tags               map[string]string

	SecurityGroupNames []string
	Interfaces         []Interface
	// BlockDevices maps IMDS block-device names ("ami", "root", "ebs1"...) to device names.
	BlockDevices map[string]string

	InstanceProfileARN string // empty: no instance profile
	InstanceProfileID  string
	RoleName           string
}

// Interface is one attached network interface.
type Interface struct {
	MAC                string
	DeviceIndex        int
	ID                 string
	PrivateIPs         []string
	SubnetID           string
	SubnetCIDR         string
	VPCID              string
	VPCCIDR            string
	OwnerID            string
	SecurityGroupIDs   []string
	SecurityGroupNames []string
}

// RoleCredentials are the temporary credentials of the instance's role.
type RoleCredentials struct {
	AccessKeyID     string
	SecretAccessKey string
	Token           string
	Expiration      time.Time
	LastUpdated     time.Time
}

// Source gives the server live data about its instance.
type Source interface {
	// Metadata returns the instance's current metadata; false when the instance is gone.
	Metadata(instanceID string) (Metadata, bool)
	// RoleCredentials returns valid credentials for the instance profile's role (issuing new
	// ones when the cached ones are close to expiry).
	RoleCredentials(instanceID string) (RoleCredentials, error)
}

// Server is one instance's metadata endpoint.
type Server struct {
	instanceID string
	src        Source
	log        *slog.Logger
	now        func() time.Time
	ln         net.Listener
	http       *http.Server

	mu     sync.Mutex
	tokens map[string]time.Time // token -> expiry
}

// Start listens on addr (for example "127.0.0.1:0") and serves the metadata of instanceID.
func Start(addr, instanceID string, src Source, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for instance metadata of %s: %w", instanceID, err)
	}
	s := &Server{instanceID: instanceID, src: src, log: log, now: time.Now, ln: ln, tokens: map[string]time.Time{}}
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("instance metadata server failed", "instance", instanceID, "err", err)
		}
	}()
	return s, nil
}

// Endpoint is the base URL to put in AWS_EC2_METADATA_SERVICE_ENDPOINT.
func (s *Server) Endpoint() string { return "http://" + s.ln.Addr().String() + "/" }

// Close stops the server.
func (s *Server) Close() error { return s.http.Close() }

const (
	tokenHeader    = "X-Aws-Ec2-Metadata-Token"
	tokenTTLHeader = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	maxTokenTTL    = 21600
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	md, ok := s.src.Metadata(s.instanceID)
	if !ok {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	if md.EndpointDisabled {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	if r.URL.Path == "/latest/api/token" {
		s.serveToken(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if tok := r.Header.Get(tokenHeader); tok != "" || md.HTTPTokensRequired {
		// A token that is present must be valid even when tokens are optional, as on AWS.
		if !s.validToken(tok) {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
	}
	s.serveMetadata(w, r, md)
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	// AWS refuses token requests that went through a proxy, to protect against SSRF.
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(tokenTTLHeader))
	if err != nil || ttl < 1 || ttl > maxTokenTTL {
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return
	}
	b := make([]byte, 28)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	s.mu.Lock()
	now := s.now()
	for t, exp := range s.tokens {
		if now.After(exp) {
			delete(s.tokens, t)
		}
	}
	s.tokens[tok] = now.Add(time.Duration(ttl) * time.Second)
	s.mu.Unlock()
	w.Header().Set(tokenTTLHeader, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(tok))
}

func (s *Server) validToken(tok string) bool {
	if tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	return ok && s.now().Before(exp)
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request, md Metadata) {
	p := r.URL.Path
	switch {
	case p == "/latest/user-data" || p == "/latest/user-data/":
		if md.UserData == nil {
			http.Error(w, "Not Found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(md.UserData)
		return
	case p == "/latest/dynamic/instance-identity/document":
		s.writeJSON(w, identityDocument(md))
		return
	case p == "/latest/meta-data/iam/info":
		if md.InstanceProfileARN == "" {
			http.Error(w, "Not Found", http.StatusNotFound)
			return
		}
		s.writeJSON(w, map[string]string{"Code": "Success", "LastUpdated": s.now().UTC().Format(time.RFC3339), "InstanceProfileArn": md.InstanceProfileARN, "InstanceProfileId": md.InstanceProfileID})
		return
	case md.RoleName != "" && p == "/latest/meta-data/iam/security-credentials/"+md.RoleName:
		c, err := s.src.RoleCredentials(s.instanceID)
		if err != nil {
			s.log.Warn("issuing instance role credentials failed", "instance", s.instanceID, "err", err)
			http.Error(w, "Internal Server Error", http.StatusInternalServerError)
			return
		}
		s.writeJSON(w, map[string]string{
			"Code": "Success", "LastUpdated": c.LastUpdated.UTC().Format(time.RFC3339), "Type": "AWS-HMAC",
			"AccessKeyId": c.AccessKeyID, "SecretAccessKey": c.SecretAccessKey, "Token": c.Token,
			"Expiration": c.Expiration.UTC().Format(time.RFC3339),
		})
		return
	}
	tree := metadataTree(md)
	for _, prefix := range []string{"/latest/meta-data", "/latest/dynamic", "/latest"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			if v, ok := tree[p]; ok {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = w.Write([]byte(v))
				return
			}
			if list := listing(tree, strings.TrimSuffix(p, "/")+"/"); list != "" {
				w.Header().Set("Content-Type", "text/plain")
				_, _ = w.Write([]byte(list))
				return
			}
		}
	}
	http.Error(w, "Not Found", http.StatusNotFound)
}

func (s *Server) writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(b)
}

func identityDocument(md Metadata) map[string]any {
	return map[string]any{
		"accountId": md.AccountID, "architecture": md.Architecture, "availabilityZone": md.AZ,
		"billingProducts": nil, "devpayProductCodes": nil, "marketplaceProductCodes": nil,
		"imageId": md.ImageID, "instanceId": md.InstanceID, "instanceType": md.InstanceType,
		"kernelId": nil, "pendingTime": md.PendingTime.UTC().Format(time.RFC3339), "privateIp": md.PrivateIP,
		"ramdiskId": nil, "region": md.Region, "version": "2017-09-30",
	}
}

// metadataTree flattens the metadata into leaf paths; directories are derived by listing.
func metadataTree(md Metadata) map[string]string {
	t := map[string]string{}
	m := func(k, v string) { t["/latest/meta-data/"+k] = v }
	m("ami-id", md.ImageID)
	m("ami-launch-index", strconv.Itoa(md.LaunchIndex))
	m("ami-manifest-path", "(unknown)")
	m("hostname", md.Hostname)
	m("local-hostname", md.Hostname)
	m("instance-id", md.InstanceID)
	m("instance-type", md.InstanceType)
	m("instance-life-cycle", "on-demand")
	m("local-ipv4", md.PrivateIP)
	m("placement/availability-zone", md.AZ)
	m("placement/availability-zone-id", md.AZID)
	m("placement/region", md.Region)
	m("reservation-id", md.ReservationID)
	m("security-groups", strings.Join(md.SecurityGroupNames, "\n"))
	m("services/domain", "amazonaws.com")
	m("services/partition", "aws")
	for name, dev := range md.BlockDevices {
		m("block-device-mapping/"+name, dev)
	}
	for _, ifc := range md.Interfaces {
		if ifc.DeviceIndex == 0 {
			m("mac", ifc.MAC)
		}
		base := "network/interfaces/macs/" + ifc.MAC + "/"
		m(base+"device-number", strconv.Itoa(ifc.DeviceIndex))
		m(base+"interface-id", ifc.ID)
		m(base+"local-hostname", md.Hostname)
		m(base+"local-ipv4s", strings.Join(ifc.PrivateIPs, "\n"))
		m(base+"mac", ifc.MAC)
		m(base+"owner-id", ifc.OwnerID)
		m(base+"security-group-ids", strings.Join(ifc.SecurityGroupIDs, "\n"))
		m(base+"security-groups", strings.Join(ifc.SecurityGroupNames, "\n"))
		m(base+"subnet-id", ifc.SubnetID)
		m(base+"subnet-ipv4-cidr-block", ifc.SubnetCIDR)
		m(base+"vpc-id", ifc.VPCID)
		m(base+"vpc-ipv4-cidr-block", ifc.VPCCIDR)
		m(base+"vpc-ipv4-cidr-blocks", ifc.VPCCIDR)
	}
	if md.RoleName != "" {
		m("iam/security-credentials/"+md.RoleName, "")
		m("iam/info", "")
	}
	if md.MetadataTags {
		for k, v := range md.Tags {
			m("tags/instance/"+k, v)
		}
	}
	t["/latest/dynamic/instance-identity/document"] = ""
	if md.UserData != nil {
		t["/latest/user-data"] = ""
	}
	return t
}

// listing renders the children of dir (which ends in "/") the way IMDS lists a category:
// one per line, sub-categories with a trailing slash.
func listing(tree map[string]string, dir string) string {
	seen := map[string]bool{}
	for k := range tree {
		rest, ok := strings.CutPrefix(k, dir)
		if !ok || rest == "" {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seen[rest[:i+1]] = true
		} else {
			seen[rest] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, "\n")
}
