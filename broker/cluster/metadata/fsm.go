package metadata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// snapshotFormat is bumped on incompatible changes to the snapshot layout.
const snapshotFormat = 1

// Result is what Apply returns for a command (raft.ApplyFuture.Response()).
type Result struct {
	// Value is the command's answer; its type is documented on the command.
	Value any
	// Err is the command's refusal; the state did not change.
	Err error
}

// FSM is the replicated state machine. Raft calls Apply, Snapshot and
// Restore from one goroutine; readers call Current from any goroutine.
type FSM struct {
	log   *slog.Logger
	state atomic.Pointer[State]

	mu      sync.Mutex // guards halted and changed
	halted  error
	changed chan struct{}
}

var _ raft.FSM = (*FSM)(nil)

// New returns a state machine holding the empty state.
func New(logger *slog.Logger) *FSM {
	if logger == nil {
		logger = slog.Default()
	}
	f := &FSM{log: logger, changed: make(chan struct{})}
	f.state.Store(Empty())
	return f
}

// Current is the latest applied state. It must not be modified.
func (f *FSM) Current() *State { return f.state.Load() }

// Changed returns a channel that is closed at the next state change.
func (f *FSM) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// WaitFor returns the first applied state ok accepts, the current one
// included, or, with ctx's error, the last one it saw once ctx ends.
func (f *FSM) WaitFor(ctx context.Context, ok func(*State) bool) (*State, error) {
	for {
		// Changed before Current: a state applied in between closes it.
		changed := f.Changed()
		st := f.Current()
		if ok(st) {
			return st, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}

// Err is non-nil once the state machine halted on an entry it could not
// apply; the node must then stop serving metadata and be upgraded.
func (f *FSM) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.halted
}

func (f *FSM) publish(st *State) {
	f.state.Store(st)
	f.mu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyEntry(int64(l.Index), l.Data)
}

// ApplyEntry applies one log entry at the given index. It is Apply without
// the raft types, for tests and tools that replay a log.
func (f *FSM) ApplyEntry(index int64, data []byte) *Result {
	if err := f.Err(); err != nil {
		return &Result{Err: err}
	}
	cur := f.state.Load()
	if len(data) == 0 {
		return f.halt(index, fmt.Errorf("%w: empty entry at index %d", ErrBadCommand, index))
	}
	typ := CommandType(data[0])
	h, ok := handlerOf(typ)
	if !ok {
		if typ&IgnorableFlag != 0 {
			f.log.Warn("skipping unknown ignorable metadata command", "type", uint8(typ), "index", index)
			next := cur.shallowCopy()
			next.Index = index
			f.publish(next)
			return &Result{}
		}
		return f.halt(index, fmt.Errorf("%w %d at index %d", ErrUnknownCommand, typ, index))
	}
	c := &applyCtx{st: cur.shallowCopy(), index: index}
	c.st.Index = index
	val, err := h(c, data[1:])
	if errors.Is(err, ErrBadCommand) {
		return f.halt(index, err)
	}
	if err != nil {
		// A refused command changes nothing but the applied index.
		next := cur.shallowCopy()
		next.Index = index
		f.publish(next)
		return &Result{Err: err}
	}
	f.publish(c.st)
	return &Result{Value: val}
}

func (f *FSM) halt(index int64, err error) *Result {
	f.log.Error("metadata state machine halted: this node cannot apply the metadata log; upgrade it", "index", index, "err", err)
	f.mu.Lock()
	f.halted = fmt.Errorf("%w: %w", ErrHalted, err)
	f.mu.Unlock()
	return &Result{Err: f.halted}
}

// MarshalState encodes a state deterministically: equal states give equal
// bytes (struct fields in order, map keys sorted).
func MarshalState(st *State) ([]byte, error) {
	b, err := json.Marshal(snapshotFile{Format: snapshotFormat, State: st})
	if err != nil {
		return nil, fmt.Errorf("encoding metadata state: %w", err)
	}
	return b, nil
}

// UnmarshalState decodes what MarshalState wrote.
func UnmarshalState(b []byte) (*State, error) {
	// A field this version does not know means a newer version wrote the
	// snapshot: refuse it rather than drop what we cannot represent.
	var sf snapshotFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		return nil, fmt.Errorf("decoding metadata state: %w", err)
	}
	if sf.Format != snapshotFormat {
		return nil, fmt.Errorf("metadata snapshot format %d, this broker reads %d", sf.Format, snapshotFormat)
	}
	if sf.State == nil {
		return nil, errors.New("metadata snapshot without a state")
	}
	return sf.State.shallowCopy(), nil
}

type snapshotFile struct {
	Format int    `json:"format"`
	State  *State `json:"state"`
}

// Snapshot implements raft.FSM. The state is immutable, so the snapshot is
// just the current pointer; encoding happens in Persist.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.Err(); err != nil {
		return nil, err
	}
	return &snapshot{st: f.state.Load()}, nil
}

// Restore implements raft.FSM.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("reading metadata snapshot: %w", err)
	}
	st, err := UnmarshalState(b)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.halted = nil // a snapshot from a healthy leader replaces what we had
	f.mu.Unlock()
	f.publish(st)
	return nil
}

type snapshot struct{ st *State }

// Persist implements raft.FSMSnapshot.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	b, err := MarshalState(s.st)
	if err == nil {
		_, err = sink.Write(b)
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persisting metadata snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *snapshot) Release() {}
