package boot

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeIMDS is a tiny IMDSv2 server on 127.0.0.1: a token from PUT
// /latest/api/token (with a TTL header), then GETs that must carry it.
type fakeIMDS struct {
	InstanceID, Region, AZ, PrivateIP string
	UserData                          []byte // nil: 404, as EC2 answers for an instance launched without user data
	RoleName, AccessKeyID             string
	SecretAccessKey, SessionToken     string // "" serves fixed stand-ins (for fakeKMS, which checks only the key id)
	FailFirst                         int32  // answer this many requests with 503 first (IMDS not ready)
	// Metadata serves more meta-data paths (relative to /latest/meta-data/).
	Metadata map[string]string

	token     string
	requests  atomic.Int32
	tokenPuts atomic.Int32
	URL       string
	// mu orders a test's changes of the fields above before the requests
	// of a broker process: the race detector sees the sockets of this
	// process as synchronisation, not another process's (published).
	mu sync.Mutex
}

// published makes the fields set so far visible to the requests that
// follow, for a test whose requests come from another process.
func (f *fakeIMDS) published() {
	f.mu.Lock()
	f.mu.Unlock() //lint:ignore SA2001 the empty critical section is the ordering
}

func startFakeIMDS(t *testing.T, f *fakeIMDS) *fakeIMDS {
	t.Helper()
	f.token = "token-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.Listener = listenLoopback(t)
	srv.Start()
	t.Cleanup(srv.Close)
	f.URL = srv.URL + "/"
	return f
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *fakeIMDS) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.requests.Add(1); n <= f.FailFirst {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
		ttl, err := strconv.Atoi(r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "missing or bad token TTL", http.StatusBadRequest)
			return
		}
		f.tokenPuts.Add(1)
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", strconv.Itoa(ttl))
		io.WriteString(w, f.token)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-Aws-Ec2-Metadata-Token") != f.token {
		http.Error(w, "IMDSv2 token required", http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/latest/dynamic/instance-identity/document":
		json.NewEncoder(w).Encode(map[string]any{
			"instanceId": f.InstanceID, "region": f.Region, "availabilityZone": f.AZ,
			"privateIp": f.PrivateIP, "instanceType": "m7g.large", "accountId": "123456789012",
			"architecture": "arm64", "imageId": "ami-0123456789abcdef0",
		})
	case "/latest/meta-data/placement/availability-zone":
		io.WriteString(w, f.AZ)
	case "/latest/meta-data/local-ipv4":
		io.WriteString(w, f.PrivateIP)
	case "/latest/user-data":
		if f.UserData == nil {
			http.NotFound(w, r)
			return
		}
		w.Write(f.UserData)
	case "/latest/meta-data/iam/security-credentials/":
		io.WriteString(w, f.RoleName)
	case "/latest/meta-data/iam/security-credentials/" + f.RoleName:
		secret, token := f.SecretAccessKey, f.SessionToken
		if secret == "" {
			secret, token = "role-secret", "role-session-token"
		}
		json.NewEncoder(w).Encode(map[string]string{
			"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": f.AccessKeyID,
			"SecretAccessKey": secret, "Token": token,
			"Expiration":  time.Now().Add(6 * time.Hour).UTC().Format(time.RFC3339),
			"LastUpdated": time.Now().UTC().Format(time.RFC3339),
		})
	default:
		if v, ok := f.Metadata[strings.TrimPrefix(r.URL.Path, "/latest/meta-data/")]; ok && strings.HasPrefix(r.URL.Path, "/latest/meta-data/") {
			io.WriteString(w, v)
			return
		}
		http.NotFound(w, r)
	}
}

// fakeKMS serves kms:Decrypt in the awsJson1_1 protocol, as KMS does:
// a ciphertext decrypts only with the key and the exact encryption context
// it was "encrypted" under.
type fakeKMS struct {
	AccessKeyID string // requests must be signed with it (the role's credentials from IMDS)
	Deny        bool   // answer AccessDeniedException, as for a role without kms:Decrypt

	mu       sync.Mutex
	blobs    map[string]kmsBlob
	decrypts atomic.Int32
	URL      string
}

type kmsBlob struct {
	keyID     string
	context   map[string]string
	plaintext []byte
}

func startFakeKMS(t *testing.T, f *fakeKMS) *fakeKMS {
	t.Helper()
	f.blobs = map[string]kmsBlob{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.Listener = listenLoopback(t)
	srv.Start()
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// encrypt registers plaintext and returns its ciphertext blob.
func (f *fakeKMS) encrypt(keyID string, context map[string]string, plaintext []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	blob := fmt.Sprintf("fake-ciphertext-%d", len(f.blobs))
	f.blobs[blob] = kmsBlob{keyID: keyID, context: maps.Clone(context), plaintext: plaintext}
	return []byte(blob)
}

func (f *fakeKMS) serve(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Errortype", code)
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
	}
	if r.Header.Get("X-Amz-Target") != "TrentService.Decrypt" {
		fail(400, "UnknownOperationException", "only Decrypt is served")
		return
	}
	if auth := r.Header.Get("Authorization"); !strings.Contains(auth, "Credential="+f.AccessKeyID+"/") || !strings.Contains(auth, "/kms/aws4_request") {
		fail(400, "UnrecognizedClientException", "request not signed with the instance role's credentials: "+auth)
		return
	}
	f.decrypts.Add(1)
	var in struct {
		CiphertextBlob    []byte
		KeyId             string
		EncryptionContext map[string]string
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(400, "SerializationException", err.Error())
		return
	}
	if f.Deny {
		fail(400, "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/tributary-broker/i-0abc is not authorized to perform: kms:Decrypt on this resource because no identity-based policy allows the kms:Decrypt action")
		return
	}
	f.mu.Lock()
	blob, ok := f.blobs[string(in.CiphertextBlob)]
	f.mu.Unlock()
	switch {
	case !ok || !maps.Equal(blob.context, in.EncryptionContext):
		fail(400, "InvalidCiphertextException", "")
	case in.KeyId != "" && in.KeyId != blob.keyID:
		fail(400, "IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation.")
	default:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		json.NewEncoder(w).Encode(map[string]string{
			"KeyId": blob.keyID, "Plaintext": base64.StdEncoding.EncodeToString(blob.plaintext),
			"EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
		})
	}
}
