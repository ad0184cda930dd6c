package awsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// Protocol is the AWS wire protocol of a request.
type Protocol string

// The protocols the server routes.
const (
	ProtocolQuery     Protocol = "query"     // awsQuery: form-encoded Action=..., XML responses (STS, IAM, CloudWatch)
	ProtocolEC2       Protocol = "ec2"       // ec2Query: as query, but EC2's XML shapes and error envelope
	ProtocolJSON      Protocol = "json"      // awsJson1_0/1_1: X-Amz-Target, JSON bodies (KMS)
	ProtocolRPCv2CBOR Protocol = "rpcv2cbor" // smithy-rpcv2-cbor: /service/<S>/operation/<Op>, CBOR bodies (newer CloudWatch SDKs)
	ProtocolRESTXML   Protocol = "restxml"   // S3: the operation is the method, path and query; XML bodies, S3's <Error> envelope
)

// MaxBodyBytes bounds a request body (PutMetricData's limit is 1 MB; user data 16 KiB).
const MaxBodyBytes = 8 << 20

// Request is one verified AWS API call, as a Service sees it.
type Request struct {
	HTTP       *http.Request
	Body       []byte     // the raw payload (already read and verified)
	Protocol   Protocol   // how to decode Body and encode the answer
	Service    string     // the credential scope's service name: ec2, kms, sts, iam, monitoring
	Action     string     // the operation: "RunInstances", "Decrypt", "PutMetricData"
	Params     url.Values // query and form parameters (query protocols; empty otherwise)
	Region     string     // the credential scope's region
	RequestID  string
	Caller     Identity   // who signed it
	Credential Credential // the access key used (for sts:GetSessionToken-like calls)

	authz *authorization
}

// DecodeJSON decodes a JSON protocol body into v. An empty body decodes as {}.
func (r *Request) DecodeJSON(v any) error {
	if len(bytes.TrimSpace(r.Body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return Errorf("SerializationException", "Could not decode the request body: %v", err)
	}
	return nil
}

// Authorize asks the server's Authorizer whether the caller may perform action (for example
// "kms:Decrypt") on resource (an ARN, or "*"). Conditions carries request-specific condition
// keys such as "kms:EncryptionContext:cluster". It returns nil when allowed, or the access
// denied error this service's clients expect (AccessDeniedException for JSON services,
// UnauthorizedOperation for EC2, AccessDenied for query services).
func (r *Request) Authorize(ctx context.Context, action, resource string, conditions map[string][]string) error {
	d, err := r.decide(ctx, action, resource, conditions)
	if err != nil || d.Allowed {
		return err
	}
	return r.denied(action, resource, d.Reason)
}

// CheckExplicitDeny is for callers that a resource policy (a KMS key policy or grant) already
// allows: as in AWS, an explicit Deny in the caller's identity policies still refuses. It
// returns the access denied error only for an explicit Deny, nil otherwise.
func (r *Request) CheckExplicitDeny(ctx context.Context, action, resource string, conditions map[string][]string) error {
	d, err := r.decide(ctx, action, resource, conditions)
	if err != nil || !d.ExplicitDeny {
		return err
	}
	return r.denied(action, resource, d.Reason)
}

// decide asks the Authorizer; roots and servers without one are allowed everything.
func (r *Request) decide(ctx context.Context, action, resource string, conditions map[string][]string) (Decision, error) {
	if r.Caller.IsRoot() || r.authz == nil {
		return Decision{Allowed: true}, nil
	}
	a := r.authz.get()
	if a == nil {
		return Decision{Allowed: true}, nil
	}
	d, err := a.Authorize(ctx, AuthorizationRequest{Caller: r.Caller, Action: action, Resource: resource, Conditions: conditions, Region: r.Region})
	if err != nil {
		return Decision{}, fmt.Errorf("evaluating policies for %s: %w", action, err)
	}
	return d, nil
}

// denied is the access denied error of this request's protocol, with AWS's message.
func (r *Request) denied(action, resource, reason string) error {
	if reason == "" {
		reason = "because no identity-based policy allows the " + action + " action"
	}
	msg := "User: " + r.Caller.ARN + " is not authorized to perform: " + action
	if resource != "" && resource != "*" {
		msg += " on resource: " + resource
	}
	msg += " " + reason
	switch errorStyle(r) {
	case ProtocolEC2:
		return &Error{Code: "UnauthorizedOperation", Message: "You are not authorized to perform this operation. " + msg, Status: http.StatusForbidden}
	case ProtocolJSON:
		return &Error{Code: "AccessDeniedException", Message: msg, Status: http.StatusBadRequest}
	default:
		return &Error{Code: "AccessDenied", Message: msg, Status: http.StatusForbidden}
	}
}

// Response is what a Service answers; the server adds the request id headers.
type Response struct {
	Status int // 200 when zero
	Header http.Header
	Body   []byte
}

// Service is one emulated AWS service, reached by its SigV4 scope name.
type Service interface {
	// Handle performs req.Action. Return an *Error for an AWS error; any other error becomes
	// InternalFailure (and is logged).
	Handle(ctx context.Context, req *Request) (*Response, error)
}

// ServiceFunc adapts a function to Service.
type ServiceFunc func(ctx context.Context, req *Request) (*Response, error)

// Handle calls f.
func (f ServiceFunc) Handle(ctx context.Context, req *Request) (*Response, error) { return f(ctx, req) }

// ServerOptions configures a Server.
type ServerOptions struct {
	Credentials *CredentialStore // required
	Logger      *slog.Logger     // nil: slog.Default()
	Now         func() time.Time // nil: time.Now
	// MaxSkew is how far a request's X-Amz-Date may be from now (AWS: 15 minutes).
	MaxSkew time.Duration
}

// Server is the one HTTP endpoint of the emulator: it verifies SigV4, finds the service by
// the credential scope and hands it the request. Non-AWS paths (the fault API) are served by
// handlers added with HandleNonAWS, without signatures.
type Server struct {
	creds   *CredentialStore
	log     *slog.Logger
	now     func() time.Time
	maxSkew time.Duration
	authz   authorization

	mu       sync.RWMutex
	services map[string]Service
	nonAWS   map[string]http.Handler // path prefix -> handler
}

type authorization struct {
	mu sync.RWMutex
	a  Authorizer
}

func (a *authorization) get() Authorizer {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.a
}

// NewServer makes a server with no services registered.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Credentials == nil {
		return nil, errors.New("awsapi: ServerOptions.Credentials is required")
	}
	s := &Server{creds: opts.Credentials, log: opts.Logger, now: opts.Now, maxSkew: opts.MaxSkew,
		services: map[string]Service{}, nonAWS: map[string]http.Handler{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxSkew == 0 {
		s.maxSkew = 15 * time.Minute
	}
	return s, nil
}

// Register serves svc for requests signed with the scope name (ec2, kms, sts, iam, monitoring).
func (s *Server) Register(scope string, svc Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[scope] = svc
}

// HandleNonAWS serves every path starting with prefix (for example "/_localcloud/") with h,
// before and without SigV4 verification.
func (s *Server) HandleNonAWS(prefix string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nonAWS[prefix] = h
}

// SetAuthorizer installs the IAM policy evaluator consulted by Request.Authorize. Without one
// (or for root callers) everything is allowed.
func (s *Server) SetAuthorizer(a Authorizer) {
	s.authz.mu.Lock()
	defer s.authz.mu.Unlock()
	s.authz.a = a
}

// Credentials is the server's credential store.
func (s *Server) Credentials() *CredentialStore { return s.creds }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	for prefix, h := range s.nonAWS {
		if strings.HasPrefix(r.URL.Path, prefix) {
			s.mu.RUnlock()
			h.ServeHTTP(w, r)
			return
		}
	}
	s.mu.RUnlock()

	req := &Request{HTTP: r, RequestID: newRequestID(), Protocol: detectProtocol(r), authz: &s.authz}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		s.writeError(w, req, Errorf("IncompleteBody", "The request body could not be read: %v", err))
		return
	}
	if len(body) > MaxBodyBytes {
		s.writeError(w, req, ErrorfStatus(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "Request body exceeds %d bytes", MaxBodyBytes))
		return
	}
	req.Body = body

	sig, bad := parseSignature(r)
	if sig != nil {
		req.Service = sig.Service
		switch sig.Service {
		case "ec2":
			req.Protocol = ProtocolEC2
		case "s3":
			req.Protocol = ProtocolRESTXML
		}
	}
	if bad != nil {
		s.writeError(w, req, authError(authIncomplete, errorStyle(req), bad.msg))
		return
	}
	if sig == nil {
		if req.Protocol == ProtocolQuery && !namesAction(r, body) {
			// Without a signature the service is unknown; a request naming no
			// Action is S3's REST shape (every other service names one), so it
			// is refused the way S3 refuses anonymous callers.
			req.Protocol = ProtocolRESTXML
		}
		s.writeError(w, req, authError(authMissing, errorStyle(req), ""))
		return
	}
	if e := s.authenticate(r, body, sig, req); e != nil {
		s.log.Info("request refused", "service", sig.Service, "accessKey", sig.AccessKeyID, "code", e.Code, "requestId", req.RequestID)
		s.writeError(w, req, e)
		return
	}
	req.Service, req.Region = sig.Service, sig.Region

	if e := parseOperation(req); e != nil {
		s.writeError(w, req, e)
		return
	}
	s.mu.RLock()
	svc := s.services[req.Service]
	s.mu.RUnlock()
	if svc == nil {
		s.writeError(w, req, ErrorfStatus(http.StatusBadRequest, "UnknownService", "The local cloud does not emulate the service %q", req.Service))
		return
	}
	resp, err := svc.Handle(r.Context(), req)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			s.log.Error("service failed", "service", req.Service, "action", req.Action, "requestId", req.RequestID, "err", err)
		}
		s.writeError(w, req, AsError(err))
		return
	}
	s.log.Debug("request", "service", req.Service, "action", req.Action, "caller", req.Caller.ARN, "requestId", req.RequestID)
	if resp == nil {
		resp = &Response{}
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.Header().Set("X-Amzn-Requestid", req.RequestID)
	if req.Protocol == ProtocolRESTXML {
		w.Header().Set("X-Amz-Request-Id", req.RequestID)
	}
	if req.Protocol == ProtocolRPCv2CBOR {
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(resp.Body)
}

// authenticate verifies the signature and fills req.Caller and req.Credential.
func (s *Server) authenticate(r *http.Request, body []byte, sig *signature, req *Request) *Error {
	now := s.now()
	if sig.Presigned {
		lifetime := presignedLifetime(sig)
		if now.After(sig.AmzDate.Add(lifetime)) {
			return authError(authSkew, errorStyle(req), fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %s)",
				sig.AmzDate.UTC().Format(amzDateFormat), now.Add(-lifetime).UTC().Format(amzDateFormat), now.UTC().Format(amzDateFormat), awsDuration(lifetime)))
		}
		if sig.AmzDate.After(now.Add(s.maxSkew)) {
			return authError(authSkew, errorStyle(req), fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + 15 min.)",
				sig.AmzDate.UTC().Format(amzDateFormat), now.Add(s.maxSkew).UTC().Format(amzDateFormat), now.UTC().Format(amzDateFormat)))
		}
	} else {
		if sig.AmzDate.Before(now.Add(-s.maxSkew)) {
			return authError(authSkew, errorStyle(req), fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 15 min.)",
				sig.AmzDate.UTC().Format(amzDateFormat), now.Add(-s.maxSkew).UTC().Format(amzDateFormat), now.UTC().Format(amzDateFormat)))
		}
		if sig.AmzDate.After(now.Add(s.maxSkew)) {
			return authError(authSkew, errorStyle(req), fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + 15 min.)",
				sig.AmzDate.UTC().Format(amzDateFormat), now.Add(s.maxSkew).UTC().Format(amzDateFormat), now.UTC().Format(amzDateFormat)))
		}
	}
	if sig.Date != sig.AmzDate.UTC().Format("20060102") {
		return authError(authBadSignature, errorStyle(req), "")
	}
	cred, ok := s.creds.Lookup(sig.AccessKeyID)
	if !ok {
		return authError(authUnknownKey, errorStyle(req), "")
	}
	if cred.SessionToken != "" && sig.SecurityToken != cred.SessionToken {
		return authError(authUnknownKey, errorStyle(req), "")
	}
	if !sig.verify(r, body, cred.SecretAccessKey) {
		return authError(authBadSignature, errorStyle(req), "")
	}
	if cred.Expired(now) {
		return authError(authExpiredToken, errorStyle(req), "")
	}
	req.Caller, req.Credential = cred.Identity, cred
	return nil
}

// stsPresignedLifetime is how long STS accepts a presigned request after its X-Amz-Date, whatever
// a longer X-Amz-Expires says (SDK users report that STS ignores longer values; a shorter one is
// honoured here, as SigV4 defines it, which is the safe direction).
const stsPresignedLifetime = 15 * time.Minute

// presignedLifetime is how long a presigned request stays valid after its X-Amz-Date.
func presignedLifetime(sig *signature) time.Duration {
	if sig.Service == "sts" {
		return min(sig.Expires, stsPresignedLifetime)
	}
	return sig.Expires
}

// awsDuration writes a duration the way AWS's expiry messages do: "15 min." or "60 sec.".
func awsDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d min.", int(d/time.Minute))
	}
	return fmt.Sprintf("%d sec.", int(d/time.Second))
}

// queryCompatible reports whether a service's JSON and CBOR protocols carry awsQuery error
// codes (the awsQueryCompatible trait): CloudWatch does, KMS does not.
func queryCompatible(service string) bool { return service == "monitoring" }

// errorStyle is the protocol whose error names a failure of req takes.
func errorStyle(req *Request) Protocol {
	if req.Protocol == ProtocolJSON && queryCompatible(req.Service) {
		return ProtocolQuery
	}
	return req.Protocol
}

func detectProtocol(r *http.Request) Protocol {
	switch {
	case strings.EqualFold(r.Header.Get("Smithy-Protocol"), "rpc-v2-cbor"):
		return ProtocolRPCv2CBOR
	case r.Header.Get("X-Amz-Target") != "":
		return ProtocolJSON
	default:
		return ProtocolQuery
	}
}

// namesAction reports whether a query-protocol request names its Action in the query or a
// form body.
func namesAction(r *http.Request, body []byte) bool {
	if r.URL.Query().Get("Action") != "" {
		return true
	}
	form, err := url.ParseQuery(string(body))
	return err == nil && form.Get("Action") != ""
}

// parseOperation finds the action name (and the parameters of query protocols).
func parseOperation(req *Request) *Error {
	r := req.HTTP
	switch req.Protocol {
	case ProtocolJSON:
		t := r.Header.Get("X-Amz-Target")
		req.Action = t[strings.LastIndex(t, ".")+1:]
	case ProtocolRPCv2CBOR:
		// /service/GraniteServiceVersion20100801/operation/PutMetricData
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if len(parts) < 4 || parts[len(parts)-4] != "service" || parts[len(parts)-2] != "operation" {
			return ErrorfStatus(http.StatusNotFound, "UnknownOperationException", "rpc-v2-cbor path %q is not /service/<service>/operation/<operation>", r.URL.Path)
		}
		req.Action = parts[len(parts)-1]
	case ProtocolRESTXML:
		req.Params = r.URL.Query()
		req.Action = s3Operation(r.Method, r.URL.Path, req.Params)
	default:
		params := r.URL.Query()
		ct := r.Header.Get("Content-Type")
		if len(req.Body) > 0 && (ct == "" || strings.HasPrefix(ct, "application/x-www-form-urlencoded")) {
			form, err := url.ParseQuery(string(req.Body))
			if err != nil {
				return Errorf("MalformedQueryString", "The request body is not a valid form: %v", err)
			}
			for k, v := range form {
				params[k] = append(params[k], v...)
			}
		}
		req.Params = params
		req.Action = params.Get("Action")
		if req.Action == "" {
			return Errorf("MissingAction", "Missing Action")
		}
	}
	if req.Action == "" {
		return Errorf("UnknownOperationException", "The request names no operation")
	}
	return nil
}

// errorXML is the awsQuery error envelope (STS, IAM, CloudWatch).
type errorXML struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

// ec2ErrorXML is EC2's error envelope.
type ec2ErrorXML struct {
	XMLName   xml.Name `xml:"Response"`
	Code      string   `xml:"Errors>Error>Code"`
	Message   string   `xml:"Errors>Error>Message"`
	RequestID string   `xml:"RequestID"`
}

// s3ErrorXML is S3's error document (no envelope, no Type).
type s3ErrorXML struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
}

func (s *Server) writeError(w http.ResponseWriter, req *Request, e *Error) {
	h := w.Header()
	h.Set("X-Amzn-Requestid", req.RequestID)
	fault := "Sender"
	if e.Server {
		fault = "Receiver"
	}
	var body []byte
	switch req.Protocol {
	case ProtocolJSON:
		h.Set("Content-Type", jsonContentType(req.HTTP))
		h.Set("X-Amzn-Errortype", e.Code)
		if queryCompatible(req.Service) {
			h.Set("X-Amzn-Query-Error", e.Code+";"+fault)
		}
		body, _ = json.Marshal(map[string]string{"__type": e.Code, "message": e.Message})
	case ProtocolRPCv2CBOR:
		h.Set("Content-Type", "application/cbor")
		h.Set("Smithy-Protocol", "rpc-v2-cbor")
		// CloudWatch is awsQueryCompatible: the SDK takes the query error code from this header.
		h.Set("X-Amzn-Query-Error", e.Code+";"+fault)
		body = cbor.Encode(cbor.Map{"__type": cbor.String(e.Code), "message": cbor.String(e.Message)})
	case ProtocolRESTXML:
		h.Set("X-Amz-Request-Id", req.RequestID)
		if req.HTTP.Method != http.MethodHead { // HEAD answers carry no body, errors neither
			h.Set("Content-Type", "application/xml")
			body, _ = xml.Marshal(s3ErrorXML{Code: e.Code, Message: e.Message, Resource: req.HTTP.URL.Path, RequestID: req.RequestID})
			body = append([]byte(xml.Header), body...)
		}
	case ProtocolEC2:
		h.Set("Content-Type", "text/xml;charset=UTF-8")
		body, _ = xml.Marshal(ec2ErrorXML{Code: e.Code, Message: e.Message, RequestID: req.RequestID})
		body = append([]byte(xml.Header), body...)
	default:
		h.Set("Content-Type", "text/xml")
		body, _ = xml.Marshal(errorXML{Type: fault, Code: e.Code, Message: e.Message, RequestID: req.RequestID})
	}
	w.WriteHeader(e.HTTPStatus())
	_, _ = w.Write(body)
}

func jsonContentType(r *http.Request) string {
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/x-amz-json-") {
		return ct
	}
	return "application/x-amz-json-1.1"
}

func newRequestID() string {
	id := NewID(32)
	return id[0:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:32]
}

// JSONResponse encodes v as the answer to a JSON protocol request.
func JSONResponse(req *Request, v any) (*Response, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %s response: %w", req.Action, err)
	}
	return &Response{Header: http.Header{"Content-Type": {jsonContentType(req.HTTP)}}, Body: body}, nil
}

// CBORResponse encodes v as the answer to an rpc-v2-cbor request.
func CBORResponse(v cbor.Value) *Response {
	return &Response{Header: http.Header{"Content-Type": {"application/cbor"}}, Body: cbor.Encode(v)}
}

// QueryResponse encodes result as the answer to an awsQuery request:
//
//	<ActionResponse xmlns="ns"><ActionResult>…result's fields…</ActionResult>
//	<ResponseMetadata><RequestId>…</RequestId></ResponseMetadata></ActionResponse>
//
// result is a struct whose fields carry xml tags relative to the Result element; nil writes
// an action without a Result element (as AWS does for calls that return nothing).
func QueryResponse(req *Request, xmlns string, result any) (*Response, error) {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	start := xml.StartElement{Name: xml.Name{Local: req.Action + "Response"}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: xmlns}}}
	if err := enc.EncodeToken(start); err != nil {
		return nil, err
	}
	if result != nil {
		if err := enc.EncodeElement(result, xml.StartElement{Name: xml.Name{Local: req.Action + "Result"}}); err != nil {
			return nil, fmt.Errorf("encoding %s response: %w", req.Action, err)
		}
	}
	meta := struct {
		RequestID string `xml:"RequestId"`
	}{req.RequestID}
	if err := enc.EncodeElement(meta, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}}); err != nil {
		return nil, err
	}
	if err := enc.EncodeToken(start.End()); err != nil {
		return nil, err
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return &Response{Header: http.Header{"Content-Type": {"text/xml"}}, Body: buf.Bytes()}, nil
}
