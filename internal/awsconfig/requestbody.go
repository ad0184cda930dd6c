package awsconfig

import (
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// plainBodyClient hands net/http the SDK's request bodies as plain readers,
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
type plainBodyClient struct {
	next aws.HTTPClient
}

// Do sends r with its body stripped to Read and Close.
func (c plainBodyClient) Do(r *http.Request) (*http.Response, error) {
	if _, ok := r.Body.(io.WriterTo); ok && r.Body != http.NoBody {
		r = r.WithContext(r.Context()) // a shallow copy: the caller's request is not changed
		r.Body = readCloser{r.Body}
	}
	return c.next.Do(r)
}

// readCloser shows only the Read and Close of the body it holds.
type readCloser struct {
	io.ReadCloser
}

// plainBodies wraps a service client's HTTP client in plainBodyClient, once.
// It is applied as a service client option, after the SDK tuned its own
// client (dial and read timeouts of the defaults mode), which it keeps.
func plainBodies(c aws.HTTPClient) aws.HTTPClient {
	if c == nil {
		return nil
	}
	if _, ok := c.(plainBodyClient); ok {
		return c
	}
	return plainBodyClient{next: c}
}
