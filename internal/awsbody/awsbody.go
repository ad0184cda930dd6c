// Package awsbody works around a race between the AWS SDK's request body
// and net/http that closed connections under answers being read. Every
// AWS client of this repository, the provider's and the broker's, sends
// through it.
package awsbody

import (
	"context"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Client hands net/http the SDK's request bodies as plain readers,
// hiding the io.WriterTo the SDK's body wrapper has. That WriterTo closed
// the connection under the answer being read, at random, on a loaded
// machine, and most against an endpoint on loopback (the local cloud):
//
//  1. smithy-go sends a request body wrapped in a "safe" ReadCloser that
//     has WriteTo, and net/http flushes the headers of such a body (a type
//     it does not know to be in memory) before it, so the body goes
//     straight to the socket and the endpoint can answer at once;
//  2. after writing Content-Length bytes, net/http's write loop reads the
//     body once more to check that nothing is left (transferWriter.writeBody),
//     with io.Copy, which uses the body's WriteTo;
//  3. smithy-go closes the request body as soon as Client.Do returns, that
//     is once the answer's headers are in (smithyhttp.ClientHandler.Handle);
//  4. if the write loop was descheduled between 1 and 2 for longer than the
//     endpoint took to answer, WriteTo finds the body closed and returns
//     io.EOF as an error (Read returns it as the end, WriteTo must not).
//     net/http takes it for a failed write and closes the connection, while
//     the SDK still reads the answer: "read tcp ...: use of closed network
//     connection" from the deserializer (the call fails and is retried) or
//     from the SDK's draining of the body ("failed to discard remaining HTTP
//     response body").
//
// With only Read visible, step 2 reads io.EOF from the closed body, which
// io.Copy takes for the end it is: the request counts as written and the
// connection stays open. Nothing else changes: the SDK sets ContentLength,
// and net/http flushed the headers of the wrapped body too.
type Client struct {
	Next aws.HTTPClient
}

// Do sends r with its body stripped to Read and Close.
func (c Client) Do(r *http.Request) (*http.Response, error) {
	if _, ok := r.Body.(io.WriterTo); ok && r.Body != http.NoBody {
		r = r.WithContext(r.Context()) // a shallow copy: the caller's request is not changed
		r.Body = readCloser{r.Body}
	}
	return c.Next.Do(r)
}

// readCloser shows only the Read and Close of the body it holds.
type readCloser struct {
	io.ReadCloser
}

// Wrap wraps a service client's HTTP client in Client, once. Applied as a
// service client option, after the SDK tuned its own client (dial and
// read timeouts of the defaults mode), it keeps that client.
func Wrap(c aws.HTTPClient) aws.HTTPClient {
	if c == nil {
		return nil
	}
	if _, ok := c.(Client); ok {
		return c
	}
	return Client{Next: c}
}

// LoadDefaultConfig is config.LoadDefaultConfig with the loaded HTTP
// client wrapped in Client, for callers that do not build their clients
// with per-service options (the broker's shippers and boot agent). The
// wrapping comes after the loading, which adds a CA bundle
// (AWS_CA_BUNDLE, the local cloud's) only to the SDK's own client type.
func LoadDefaultConfig(ctx context.Context, opts ...func(*config.LoadOptions) error) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return cfg, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = awshttp.NewBuildableClient()
	}
	cfg.HTTPClient = Wrap(cfg.HTTPClient)
	return cfg, nil
}

// NewClient is the SDK's default HTTP client behind Client, for an
// aws.Config built by hand.
func NewClient() Client { return Client{Next: awshttp.NewBuildableClient()} }
