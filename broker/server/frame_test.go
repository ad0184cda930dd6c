package server

import (
	"io"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/storage"
)

// A fetch response whose batches are in segment files but which the piece
// encoder cannot encode (here: a tagged field it leaves to kmsg) is not
// sent at all: encoded by kmsg it would go out without those batches, an
// empty partition the consumer would read as "nothing new" and ask for
// again forever. The connection is closed instead.
func TestFrameRefusesAFileResponseItCannotEncode(t *testing.T) {
	c := &conn{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 12
	rt := kmsg.NewFetchResponseTopic()
	rt.Topic = "t"
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.UnknownTags.Set(77, []byte{1})
	rt.Partitions = append(rt.Partitions, rp)
	resp.Topics = append(resp.Topics, rt)
	files := fetchFiles{fileKeyOf(&resp.Topics[0], 0): []storage.FileSlice{{}}}

	if pieces, filePieces, ok := c.frame(1, resp, files); ok {
		t.Fatalf("framed (%d pieces, %d file pieces), want refused", len(pieces), len(filePieces))
	}
	// Without files the same response is encoded by kmsg as before.
	if pieces, _, ok := c.frame(1, resp, nil); !ok || len(pieces) == 0 {
		t.Fatalf("without files: ok %v, %d pieces", ok, len(pieces))
	}
}
