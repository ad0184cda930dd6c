package server

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tributary/tributary/broker/storage"
)

// errInvalidConfig marks a rejected config name or value (INVALID_CONFIG).
var errInvalidConfig = errors.New("invalid config")

// storageErrorCode maps a storage error to the Kafka error code a client
// acts on.
func storageErrorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, storage.ErrCorruptMessage):
		return kerr.CorruptMessage.Code
	case errors.Is(err, storage.ErrRecordTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, storage.ErrInvalidRecord):
		return kerr.InvalidRecord.Code
	case errors.Is(err, storage.ErrUnsupportedMessageFormat):
		return kerr.UnsupportedForMessageFormat.Code
	case errors.Is(err, storage.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, storage.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, storage.ErrUnknownProducerID):
		return kerr.UnknownProducerID.Code
	case errors.Is(err, storage.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, storage.ErrTransactionCoordinatorFenced):
		return kerr.TransactionCoordinatorFenced.Code
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, storage.ErrStorage):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, storage.ErrFencedLeaderEpoch):
		// This broker stopped leading at the epoch the append was made
		// under; the producer finds the new leader and resends.
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, storage.ErrClosed):
		// Deleted or shutting down: the client refreshes its metadata.
		return kerr.NotLeaderForPartition.Code
	default:
		return kerr.UnknownServerError.Code
	}
}

// leaderEpochErrorCode checks the leader epoch a client believes in
// (KIP-320): an older one is fenced, a newer one means our metadata lags
// behind the client's.
func leaderEpochErrorCode(clientEpoch, epoch int32) int16 {
	switch {
	case clientEpoch < 0 || clientEpoch == epoch:
		return 0
	case clientEpoch < epoch:
		return kerr.FencedLeaderEpoch.Code
	default:
		return kerr.UnknownLeaderEpoch.Code
	}
}
