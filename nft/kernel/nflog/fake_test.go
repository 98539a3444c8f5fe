package nflog

import (
	"context"
	"errors"
	"testing"
)

func TestFakeDeliversInOrderThenCloses(t *testing.T) {
	f := NewFake(4)
	f.Log(Record{Prefix: "a", Seq: 0}, Record{Prefix: "b", Seq: 1})
	f.Lose(3)
	f.Log(Record{Prefix: "c", Seq: 5})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := f.Read(context.Background(), func(r Record) { got += r.Prefix }); err != nil {
		t.Fatalf("Read after Close: %v, want nil", err)
	}
	if got != "abc" || f.Overruns() != 1 || f.Lost() != 3 {
		t.Errorf("read %q, %d overruns, %d lost; want abc, 1, 3", got, f.Overruns(), f.Lost())
	}
	f.Log(Record{Prefix: "d"}) // dropped, does not block
}

func TestFakeReadEndsWithContext(t *testing.T) {
	f := NewFake(1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Read(ctx, func(Record) {}); !errors.Is(err, context.Canceled) {
		t.Errorf("Read: %v, want context.Canceled", err)
	}
}
