package nft

import (
	"testing"
	"time"
)

func TestForeignChangeMerge(t *testing.T) {
	t0 := time.Now()
	seen := ForeignChange{At: t0, Detail: "rule added by nft"}
	lost := ForeignChange{At: t0.Add(time.Second), Lost: true, Detail: "overrun"}
	for _, m := range []ForeignChange{seen.Merge(lost), lost.Merge(seen)} {
		if m.Lost || m.Detail != seen.Detail {
			t.Errorf("a change seen must outweigh lost notifications: %+v", m)
		}
		if !m.At.Equal(lost.At) {
			t.Errorf("merged news must keep the later time %v, got %v", lost.At, m.At)
		}
	}
	if m := lost.Merge(lost); !m.Lost {
		t.Errorf("two losses merge into a loss: %+v", m)
	}
}
