package nflog

import (
	"context"
	"sync"
	"sync/atomic"
)

// Source is the reading side of a log group, as what consumes records needs it.
type Source interface {
	// Read calls handle with each record until ctx is done (ctx's error) or the source is closed (nil).
	Read(ctx context.Context, handle func(Record)) error
	// Overruns and Lost count what the kernel could not deliver.
	Overruns() uint64
	Lost() uint64
	Close() error
}

var (
	_ Source = (*Reader)(nil)
	_ Source = (*Fake)(nil)
)

// Fake is a Source fed by its caller, for tests of what consumes records.
type Fake struct {
	records   chan Record
	closed    chan struct{}
	closeOnce sync.Once
	overruns  atomic.Uint64
	lost      atomic.Uint64
}

// NewFake returns a fake that holds up to queue records that Read has not taken yet.
func NewFake(queue int) *Fake {
	return &Fake{records: make(chan Record, queue), closed: make(chan struct{})}
}

// Log queues records for Read, in order, waiting while the queue is full; after Close it drops them.
func (f *Fake) Log(records ...Record) {
	for _, r := range records {
		select {
		case f.records <- r:
		case <-f.closed:
			return
		}
	}
}

// Lose counts n lost records and one overrun, as a full receive buffer would.
func (f *Fake) Lose(n uint64) {
	f.overruns.Add(1)
	f.lost.Add(n)
}

// Read hands over the queued records; once the fake is closed it hands over what was queued before
// and returns nil.
func (f *Fake) Read(ctx context.Context, handle func(Record)) error {
	for {
		select { // queued records first, so that Log then Close delivers them all
		case r := <-f.records:
			handle(r)
			continue
		default:
		}
		select {
		case r := <-f.records:
			handle(r)
		case <-f.closed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Overruns counts the calls of Lose.
func (f *Fake) Overruns() uint64 { return f.overruns.Load() }

// Lost counts the records passed to Lose.
func (f *Fake) Lost() uint64 { return f.lost.Load() }

// Close ends Read.
func (f *Fake) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}
