package awsconfig

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// heldConn holds the connection's second write (the request body: net/http
// flushes the headers of an SDK body first) after it reached the socket,
// until released: net/http's write loop is then exactly where a loaded
// machine deschedules it, after the body went out and before the loop's
// last read of the body.
type heldConn struct {
	net.Conn
	writes  int
	held    chan struct{} // closed once the body write waits
	release chan struct{}
}

func (c *heldConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.writes++
	if c.writes == 2 {
		close(c.held)
		<-c.release
	}
	return n, err
}

// TestRequestWrittenWhenAnswerComesFirst sends a request through the SDK's
// own HTTP handler (smithyhttp.ClientHandler, which closes the request body
// once Client.Do returns) while net/http's write loop is held after the
// body: the endpoint answers, the SDK closes the body, and only then does
// the write loop finish. Without plainBodyClient the loop takes the SDK
// body's WriteTo io.EOF for a write error and closes the connection under
// the answer (what the acceptance tests' "use of closed network connection"
// was); with it the request counts as written and the whole answer is read.
func TestRequestWrittenWhenAnswerComesFirst(t *testing.T) {
	answer := strings.Repeat("<member>an instance profile</member>", 200) // several KiB, as ListInstanceProfiles
	finish := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			t.Errorf("server reading the request: %v", err)
			return
		}
		half := len(answer) / 2
		_, _ = io.WriteString(w, answer[:half])
		w.(http.Flusher).Flush() // the headers and half the answer now
		<-finish
		_, _ = io.WriteString(w, answer[half:])
	}))
	defer srv.Close()
	var once sync.Once
	defer once.Do(func() { close(finish) })

	conn := &heldConn{held: make(chan struct{}), release: make(chan struct{})}
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		conn.Conn = c
		return conn, nil
	}}
	defer transport.CloseIdleConnections()
	var client aws.HTTPClient = &http.Client{Transport: transport}
	client = plainBodies(client)

	wrote := make(chan error, 1)
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) { wrote <- info.Err },
	})
	req := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	req.Method = http.MethodPost
	req.URL.Scheme, req.URL.Host, req.URL.Path = "http", strings.TrimPrefix(srv.URL, "http://"), "/"
	req, err := req.SetStream(bytes.NewReader([]byte("Action=ListInstanceProfiles&Version=2010-05-08")))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := smithyhttp.NewClientHandlerWithOptions(client).Handle(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	resp := out.(*smithyhttp.Response)
	defer resp.Body.Close()
	select {
	case <-conn.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the request body was never written on its own")
	}
	close(conn.release) // the SDK has closed the request body: let the write loop finish
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("net/http took the request for failed (%v) after the endpoint had answered it, and closes the connection under the answer", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("net/http never finished writing the request")
	}
	once.Do(func() { close(finish) })
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if string(got) != answer {
		t.Fatalf("answer of %d bytes, want %d", len(got), len(answer))
	}
}

// TestPlainBodiesKeepsTheRequest: the wrapper hides only WriteTo; what is
// sent (length, bytes) and the caller's request are unchanged, and it wraps
// once.
func TestPlainBodiesKeepsTheRequest(t *testing.T) {
	var got []byte
	var gotLength int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		gotLength = r.ContentLength
	}))
	defer srv.Close()
	client := plainBodies(srv.Client())
	if again := plainBodies(client); again != client {
		t.Fatalf("plainBodies wrapped twice: %#v", again)
	}
	body := io.NopCloser(bytes.NewReader([]byte("Action=DescribeInstances")))
	req, err := http.NewRequest(http.MethodPost, srv.URL, writerToBody{body})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len("Action=DescribeInstances"))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if string(got) != "Action=DescribeInstances" || gotLength != 24 {
		t.Fatalf("server got %q with Content-Length %d", got, gotLength)
	}
	if _, ok := req.Body.(writerToBody); !ok {
		t.Fatalf("the caller's request body was replaced by %T", req.Body)
	}
}

// writerToBody is a request body with WriteTo, as the SDK's is.
type writerToBody struct{ io.ReadCloser }

func (b writerToBody) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, b.ReadCloser) }

// TestEveryClientSendsPlainBodies: every service client New builds sends
// through plainBodyClient, over the HTTP client the SDK tuned.
func TestEveryClientSendsPlainBodies(t *testing.T) {
	isolateEnv(t)
	cl, err := New(context.Background(), Config{
		Region: "us-east-1", AccessKey: "a", SecretKey: "b",
		SkipCredentialsValidation: true, SkipRequestingAccountID: true, SkipMetadataAPICheck: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]aws.HTTPClient{
		"EC2": cl.EC2.Options().HTTPClient, "KMS": cl.KMS.Options().HTTPClient, "IAM": cl.IAM.Options().HTTPClient,
		"STS": cl.STS.Options().HTTPClient, "CloudWatch": cl.CloudWatch.Options().HTTPClient,
		"AutoScaling": cl.AutoScaling.Options().HTTPClient, "SecretsManager": cl.SecretsManager.Options().HTTPClient,
		"ACMPCA": cl.ACMPCA.Options().HTTPClient, "S3": cl.S3.Options().HTTPClient, "Firehose": cl.Firehose.Options().HTTPClient,
	} {
		p, ok := c.(plainBodyClient)
		if !ok {
			t.Errorf("%s client sends through %T, not plainBodyClient", name, c)
			continue
		}
		if _, ok := p.Next.(*awshttp.BuildableClient); !ok {
			t.Errorf("%s client: plainBodyClient wraps %T, not the SDK's own client", name, p.Next)
		}
	}
}
