package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

// TestReadFrameBodyAllocatesWhatArrives: a frame announced far above
// growFrameAbove, of which only a few bytes come, allocates about
// growFrameAbove, not the size announced; pooled or not.
func TestReadFrameBodyAllocatesWhatArrives(t *testing.T) {
	const announced = 64 << 20
	for _, pooled := range []bool{false, true} {
		br := bufio.NewReader(bytes.NewReader([]byte("only this much")))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, _, err := readFrameBody(br, announced, pooled)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("pooled %v: a body cut short: %v, want %v", pooled, err, io.ErrUnexpectedEOF)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 2*growFrameAbove {
			t.Errorf("pooled %v: a %d-byte frame of which 14 bytes came allocated %d bytes", pooled, announced, got)
		}
	}
}

// TestReadFrameBody: whole bodies below, at and above growFrameAbove are
// read exactly, from whole and dribbling readers; no body byte is io.EOF,
// a body cut short io.ErrUnexpectedEOF.
func TestReadFrameBody(t *testing.T) {
	full := make([]byte, 5*growFrameAbove+12345+10)
	for i := range full {
		full[i] = byte(i * 7)
	}
	for _, n := range []int{0, 1, 4096, growFrameAbove - 1, growFrameAbove, growFrameAbove + 1, 2 * growFrameAbove, len(full) - 10} {
		for _, pooled := range []bool{false, true} {
			for name, r := range map[string]io.Reader{
				"whole":     bytes.NewReader(full[:n+10]),
				"dribbling": io.MultiReader(bytes.NewReader(full[:n/3]), bytes.NewReader(full[n/3:n+10])),
			} {
				got, blk, err := readFrameBody(bufio.NewReaderSize(r, 4096), n, pooled)
				if err != nil || !bytes.Equal(got, full[:n]) {
					t.Errorf("%d bytes, pooled %v, %s: %d bytes, %v", n, pooled, name, len(got), err)
				}
				if pooled != (blk != nil) && n <= 1<<maxFrameShift && n > 0 {
					t.Errorf("%d bytes, pooled %v: block %v", n, pooled, blk != nil)
				}
				putFrameBlock(blk)
			}
		}
	}
	if _, _, err := readFrameBody(bytes.NewReader(nil), 3*growFrameAbove, true); err != io.EOF {
		t.Errorf("no body byte: %v, want io.EOF", err)
	}
	if _, _, err := readFrameBody(bytes.NewReader(full[:growFrameAbove+5]), 3*growFrameAbove, true); err != io.ErrUnexpectedEOF {
		t.Errorf("a body cut short after the first step: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestRequestHeaderAlonePinsLittle: on a PLAINTEXT listener a 64 MiB size
// header and a few bytes, nothing more, leave the broker's heap about
// where it was (it grew by the 64 MiB announced before).
func TestRequestHeaderAlonePinsLittle(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	// A Produce v9 (API key 0), whose frame is pooled.
	sent := append(binary.BigEndian.AppendUint32(nil, 64<<20), 0, 0, 0, 9)
	sent = append(sent, "only this much"...)
	trafficBefore := s.metrics.Snapshot().TrafficIn
	c.write(sent)
	// The broker has read what was sent (its read buffer counts it) and
	// then allocates the frame's memory; give the reader time to reach
	// its next read.
	deadline := time.Now().Add(10 * time.Second)
	for s.metrics.Snapshot().TrafficIn-trafficBefore < int64(len(sent)) {
		if time.Now().After(deadline) {
			t.Fatal("the broker did not read the bytes sent within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if grown := int64(heap()) - int64(base); grown > 16<<20 {
		t.Fatalf("a 64 MiB header and %d bytes grew the heap by %d bytes", len(sent)-4, grown)
	}
}

// TestProduceOf20MiB: a Produce request far above growFrameAbove, read
// in growing steps, is appended whole and read back byte for byte.
func TestProduceOf20MiB(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.MessageMaxBytes = 32 << 20 })
	if _, err := s.createTopic("big", 1, nil); err != nil {
		t.Fatal(err)
	}
	batch := filledBatch(20, 1<<20, 3)
	c := dial(t, s)
	for i := range 2 {
		corr := c.send(produceReq("big", -1, batch))
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = 9
		c.recv(resp, corr)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != int64(20*i) {
			t.Fatalf("produce %d: %v, offset %d", i, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
		}
	}
	corr := c.send(fetchReq("big", 20, 64<<20, 64<<20))
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 12
	c.recv(resp, corr)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 || len(p.RecordBatches) < 61 || !bytes.Equal(p.RecordBatches[12:], batch[12:]) {
		t.Fatalf("fetch: %v, %d bytes back, want the %d-byte batch sent", kerr.ErrorForCode(p.ErrorCode), len(p.RecordBatches), len(batch))
	}
}

// BenchmarkReadFrameBody reads pooled Produce frames of a given size from
// memory: "whole" allocates the size announced and reads it (the read
// before growFrameAbove), "grow" is readFrameBody. Up to growFrameAbove
// both are the same code; above it the growth adds its copies.
func BenchmarkReadFrameBody(b *testing.B) {
	for _, size := range []int{1 << 20, 3 << 20, 16 << 20} {
		src := make([]byte, size)
		for _, mode := range []string{"whole", "grow"} {
			b.Run(mode+"/"+strconv.Itoa(size>>20)+"MiB", func(b *testing.B) {
				b.SetBytes(int64(size))
				r := bytes.NewReader(src)
				br := bufio.NewReaderSize(r, 64<<10)
				for b.Loop() {
					r.Reset(src)
					br.Reset(r)
					var blk *frameBlock
					if mode == "whole" {
						var frame []byte
						frame, blk = allocFrame(size)
						if _, err := io.ReadFull(br, frame); err != nil {
							b.Fatal(err)
						}
					} else {
						var err error
						if _, blk, err = readFrameBody(br, size, true); err != nil {
							b.Fatal(err)
						}
					}
					putFrameBlock(blk)
				}
			})
		}
	}
}
