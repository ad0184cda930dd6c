package replica

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/internal/reqmem"
)

// TestReplicationRequestMemory: the replication listener charges its
// requests to its own budget (UseRequestMemory): a request larger than it
// closes the connection and is counted; a header alone holds its size
// until the connection ends; a follower's request that fits is read and
// answered, and gives its charge back once decoded.
func TestReplicationRequestMemory(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := ServeReplication(ln, func(string, int32) (*Leader, LeaderLog, bool) { return nil, nil, false }, nil, nil, nil, slog.New(slog.DiscardHandler))
	t.Cleanup(srv.Close)
	budget := reqmem.NewBudget(64 << 10)
	srv.UseRequestMemory(budget)
	dialSend := func(b []byte) net.Conn {
		c, err := net.DialTimeout("tcp", srv.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		return c
	}
	waitBudget := func(what string, cond func(reqmem.Stats) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond(budget.Stats()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v", what, budget.Stats())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	big := dialSend(binary.BigEndian.AppendUint32(nil, 100<<10))
	if _, err := big.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("a 100 KiB request against a 64 KiB budget: %v, want the connection closed", err)
	}
	waitBudget("one refusal", func(st reqmem.Stats) bool { return st.Refused == 1 && st.Held == 0 })

	header := dialSend(append(binary.BigEndian.AppendUint32(nil, 40<<10), 0, 18))
	waitBudget("a header's charge", func(st reqmem.Stats) bool { return st.Held == 40<<10 })

	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 0
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("follower")).AppendRequest(nil, req, 7)
	c := dialSend(frame)
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatalf("ApiVersions beside a held header: %v", err)
	}
	waitBudget("the header's charge alone", func(st reqmem.Stats) bool { return st.Held == 40<<10 })
	header.Close()
	waitBudget("nothing held once the header's connection ended", func(st reqmem.Stats) bool { return st.Held == 0 })
}
