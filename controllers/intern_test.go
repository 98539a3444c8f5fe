package controllers

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
)

// decoded returns a copy of s in memory of its own, as a decoder hands out every string it reads.
func decoded(s string) string { return strings.Clone(s) }

func TestInternStringSharesEqualStrings(t *testing.T) {
	table := newInternTable(10, 10)
	first := table.String(decoded("ns-0001"))
	second := table.String(decoded("ns-0001"))
	if first != "ns-0001" || !sameString(first, second) {
		t.Errorf("String gave %q and %q in different memory, want one shared copy", first, second)
	}
	if other := table.String(decoded("ns-0002")); other != "ns-0002" || sameString(other, first) {
		t.Errorf("String(ns-0002) = %q, sharing ns-0001's memory", other)
	}
	if table.String("") != "" {
		t.Error(`String("") is not ""`)
	}
}

func TestInternLabelsSharesEqualSets(t *testing.T) {
	table := newInternTable(10, 10)
	in := map[string]string{decoded("app"): decoded("redis"), decoded("tier"): decoded("db")}
	before := maps.Clone(in)
	first := table.Labels(in)
	second := table.Labels(map[string]string{decoded("tier"): decoded("db"), decoded("app"): decoded("redis")})
	if !maps.Equal(first, before) || !sameMap(first, second) {
		t.Errorf("Labels gave %v and %v as different maps, want one shared map equal to %v", first, second, before)
	}
	if !maps.Equal(in, before) {
		t.Errorf("Labels changed its input to %v", in)
	}
	for key, value := range first {
		if !sameString(key, table.String(decoded(key))) || !sameString(value, table.String(decoded(value))) {
			t.Errorf("label %s=%s is not made of the table's strings", key, value)
		}
	}
	if other := table.Labels(map[string]string{"app": "redis"}); sameMap(other, first) || len(other) != 1 {
		t.Errorf("a subset shares the map of the whole set: %v", other)
	}
	if table.Labels(map[string]string{}) != nil || table.Labels(nil) != nil {
		t.Error("an empty label set is not nil")
	}
}

// The key of a label set must tell apart sets that a naive concatenation would confuse.
func TestInternLabelsTellsApartSetsWithEqualBytes(t *testing.T) {
	table := newInternTable(100, 100)
	sets := []map[string]string{
		{"a": "bc"},
		{"ab": "c"},
		{"a": "b", "c": ""},
		{"a": "b=c"},
		{"a=b": "c"},
		{"a\x00b": "c"},
		{"a": "\x01b"},
	}
	for i, set := range sets {
		got := table.Labels(set)
		if !maps.Equal(got, set) {
			t.Errorf("Labels(%q) = %q", set, got)
		}
		for _, earlier := range sets[:i] {
			if sameMap(got, table.Labels(earlier)) {
				t.Errorf("Labels(%q) shares the map of %q", set, earlier)
			}
		}
	}
}

func TestInternPoolStartsOverWhenFull(t *testing.T) {
	table := newInternTable(4, 2)
	kept := table.Labels(map[string]string{"app": "a"})
	for i := range 10 {
		table.Labels(map[string]string{"app": fmt.Sprint("x", i)})
		if n := table.labels.Len(); n > 2 {
			t.Fatalf("after %d label sets the table holds %d, more than its limit 2", i+2, n)
		}
		if n := table.strings.Len(); n > 4 {
			t.Fatalf("after %d label sets the table holds %d strings, more than its limit 4", i+2, n)
		}
	}
	if !maps.Equal(kept, map[string]string{"app": "a"}) {
		t.Errorf("a map handed out before the table started over changed: %v", kept)
	}
}

func TestInternLookupsDoNotAllocate(t *testing.T) {
	table := newInternTable(10, 10)
	s := decoded("node-17")
	set := map[string]string{"app": "web", "tier": "fe"}
	table.String(s)
	table.Labels(set)
	if n := testing.AllocsPerRun(100, func() { table.String(s) }); n != 0 {
		t.Errorf("String of a known string allocates %.0f times", n)
	}
	if n := testing.AllocsPerRun(100, func() { table.Labels(set) }); n != 0 {
		t.Errorf("Labels of a known set allocates %.0f times", n)
	}
}

func TestInternTableIsSafeForConcurrentUse(t *testing.T) {
	table := newInternTable(64, 16)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				set := map[string]string{"app": fmt.Sprint("app-", (g+i)%40), "tier": "be"}
				if got := table.Labels(set); !maps.Equal(got, set) {
					t.Errorf("Labels(%v) = %v", set, got)
					return
				}
			}
		})
	}
	wg.Wait()
}
