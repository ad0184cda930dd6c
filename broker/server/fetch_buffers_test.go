package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestConsumersShareReadBuffersSafely: the memory Fetch reads into is
// used again once a response is written. Consumers on the PLAINTEXT and
// the SSL listener read the same topic at once, some while it is written
// (their long polls read and drop data), with fetch sizes from one batch
// to the whole topic, and every record arrives with the bytes it was
// produced with: no response is sent from memory another read has filled
// again. Run with -race, the detector also sees the TLS writer's reads of
// a buffer against the next fetch's use of it.
func TestConsumersShareReadBuffersSafely(t *testing.T) {
	e := newTLSEnv(t)
	s, _ := startListeners(t, threeListeners(e))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const (
		topic   = "shared-buffers"
		records = 3000
	)
	// value is a function of the record's number, so that a record with
	// another record's bytes, or with bytes of no record, shows.
	value := func(i int) []byte {
		v := make([]byte, 512+i%3000)
		for j := 0; j+8 <= len(v); j += 8 {
			binary.BigEndian.PutUint64(v[j:], uint64(i)<<32|uint64(j))
		}
		return v
	}
	consumer := func(listener string, fetchBytes, partitionBytes int32) func() error {
		opts := []kgo.Opt{
			kgo.SeedBrokers(s.ListenerAddr(listener).String()),
			kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxBytes(fetchBytes), kgo.FetchMaxPartitionBytes(partitionBytes),
			kgo.FetchMaxWait(200 * time.Millisecond),
		}
		if listener == "CLIENT_SECURE" {
			opts = append(opts, kgo.DialTLSConfig(clientTLS(t, e.ca, nil)))
		}
		return func() error {
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			seen := 0
			for seen < records {
				fs := cl.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					return fmt.Errorf("%s consumer after %d records: %w", listener, seen, err)
				}
				var bad error
				fs.EachRecord(func(r *kgo.Record) {
					i, err := strconv.Atoi(string(r.Key))
					if err != nil || !bytes.Equal(r.Value, value(i)) {
						bad = fmt.Errorf("%s consumer: record %s at %d/%d has bytes it was not produced with", listener, r.Key, r.Partition, r.Offset)
					}
					seen++
				})
				if bad != nil {
					return bad
				}
			}
			return nil
		}
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT").String()), kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	// The topic first, so that the consumers started next long-poll it
	// while it fills.
	if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte("0"), Value: value(0)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		errs = make(chan error, 16)
	)
	for _, c := range []func() error{
		consumer("CLIENT", 1, 1),                   // a batch per fetch
		consumer("CLIENT_SECURE", 1, 1),            // the same over TLS
		consumer("CLIENT", 256<<10, 32<<10),        // many partitions, small reads
		consumer("CLIENT_SECURE", 256<<10, 32<<10), //
		consumer("CLIENT", 50<<20, 10<<20),         // as make bench
		consumer("CLIENT_SECURE", 50<<20, 10<<20),  //
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c(); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	for i := 1; i < records; i++ {
		prod.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: value(i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				errs <- fmt.Errorf("producing: %w", err)
				cancel()
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestFetchResponseKeepsItsBuffersWhileWritten: a response the client is
// slow to read keeps its memory until the last byte is written. The
// client asks for a large partition and reads only the response's size,
// so the writer is held with most of the response still to send; other
// fetches then read another topic, of the same size, many times (they
// would be given that memory, were it released early); the first
// response, read at last, is byte for byte what a fetch of the same
// records reads afterwards.
func TestFetchResponseKeepsItsBuffersWhileWritten(t *testing.T) {
	e := newTLSEnv(t)
	s, _ := startListeners(t, threeListeners(e))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const size = 12 << 20
	for _, topic := range []string{"held", "other"} {
		prod, err := kgo.NewClient(kgo.SeedBrokers(s.ListenerAddr("CLIENT").String()), kgo.DefaultProduceTopic(topic),
			kgo.AllowAutoTopicCreation(), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		v := bytes.Repeat([]byte(topic), 1000)
		for range size / len(v) {
			prod.Produce(ctx, &kgo.Record{Value: v}, nil)
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		prod.Close()
	}
	for _, l := range []string{"CLIENT", "CLIENT_SECURE"} {
		t.Run(l, func(t *testing.T) {
			held := dialRaw(t, s, e, l)
			if err := writeFetch(held, 1, "held"); err != nil {
				t.Fatal(err)
			}
			// The size is written: the response is built and its
			// writer is sending it, held by this client's reading.
			var sizeBuf [4]byte
			if _, err := io.ReadFull(held, sizeBuf[:]); err != nil {
				t.Fatal(err)
			}
			other := dialRaw(t, s, e, l)
			for i := range 8 {
				if err := writeFetch(other, int32(10+i), "other"); err != nil {
					t.Fatal(err)
				}
				if _, err := readFetch(other, nil); err != nil {
					t.Fatal(err)
				}
			}
			first, err := readFetch(held, sizeBuf[:])
			if err != nil {
				t.Fatal(err)
			}
			if err := writeFetch(held, 2, "held"); err != nil {
				t.Fatal(err)
			}
			again, err := readFetch(held, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(first) < size/2 || !bytes.Equal(first, again) {
				t.Fatalf("a held response carried %d bytes of records, a fetch of the same records afterwards %d, and they differ", len(first), len(again))
			}
		})
	}
}

// dialRaw connects to a listener without a Kafka client, with a small
// receive buffer, so that an unread response holds its writer.
func dialRaw(t *testing.T, s *Server, e *tlsEnv, listener string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.ListenerAddr(listener).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	if listener == "CLIENT" {
		return c
	}
	tc := tls.Client(c, clientTLS(t, e.ca, nil))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc
}

// writeFetch sends a Fetch v11 of partition 0 of topic from offset 0, for
// up to 64 MiB.
func writeFetch(c net.Conn, corr int32, topic string) error {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxBytes, req.MinBytes, req.MaxWaitMillis = -1, 64<<20, 1, 100
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 64 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	b := []byte{0, 0, 0, 0}
	b = kbin.AppendInt16(b, req.Key())
	b = kbin.AppendInt16(b, req.GetVersion())
	b = kbin.AppendInt32(b, corr)
	b = kbin.AppendNullableString(b, nil)
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err := c.Write(b)
	return err
}

// readFetch reads a Fetch v11 response (its size already read when size
// is not nil) and returns its one partition's records.
func readFetch(c net.Conn, size []byte) ([]byte, error) {
	if size == nil {
		size = make([]byte, 4)
		if _, err := io.ReadFull(c, size); err != nil {
			return nil, err
		}
	}
	b := make([]byte, binary.BigEndian.Uint32(size))
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(11)
	if err := resp.ReadFrom(b[4:]); err != nil {
		return nil, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return nil, fmt.Errorf("a response of %d topics", len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		return nil, fmt.Errorf("fetch error %d", p.ErrorCode)
	}
	return p.RecordBatches, nil
}
