package server

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Request frames are read by reqmem.ReadFrame, Produce frames into pooled
// memory (see broker/internal/reqmem), each charged to the broker's
// request memory (queued.max.request.bytes, request_memory.go). A frame
// of another request is uncharged once decoded (its bytes are the
// garbage collector's from then on, as Kafka releases a request's buffer
// after parsing it unless the API needs it later); a Produce frame, whose
// record batches the handler reads, once its records are appended.

// releaseFrame gives a Produce request's frame back once its records are
// appended. The request's record batches point into the frame: they are
// dropped, so that nothing can read them after the memory serves another
// request.
func (r *request) releaseFrame() {
	if !r.mem.Pooled() {
		r.mem.Uncharge()
		return
	}
	if pr, ok := r.kreq.(*kmsg.ProduceRequest); ok {
		for i := range pr.Topics {
			for j := range pr.Topics[i].Partitions {
				pr.Topics[i].Partitions[j].Records = nil
			}
		}
	}
	r.mem.Release()
}
