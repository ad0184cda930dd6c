package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Every counted transaction is committed: a read_committed consumer reads
// exactly the records counted, and each producer's one warm-up record.
func TestProduceTxnCountsCommittedTransactions(t *testing.T) {
	seeds := startKfake(t, "t")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := ProduceTxn(ctx, seeds, TxnOptions{Topic: "t", RecordBytes: 100, TxnRecords: 10, Producers: 2, Duration: 30 * time.Second, MaxTxns: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Txns != 20 || res.Records != 200 || res.Bytes != 200*100 {
		t.Errorf("txns, records, bytes = %d, %d, %d; want 20, 200, 20000", res.Txns, res.Records, res.Bytes)
	}
	if res.CommitP50 <= 0 || res.CommitP50 > res.CommitP99 || res.TxnP99 < res.CommitP99 || res.MiBps <= 0 {
		t.Errorf("implausible figures: %+v", res)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("t"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const want = 200 + 2
	read := 0
	for read < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d committed records, want %d", read, want)
		}
		read += fs.NumRecords()
	}
	if read != want {
		t.Errorf("read %d committed records, want %d", read, want)
	}
}

func TestProduceTxnRefusesAnEmptyTransaction(t *testing.T) {
	if _, err := ProduceTxn(context.Background(), nil, TxnOptions{Topic: "t", TxnRecords: 0, Producers: 1}); err == nil {
		t.Error("accepted transactions of 0 records")
	}
}
