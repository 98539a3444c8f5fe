package nft

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/selectors"
)

func TestSetSizeLeavesRoomAndKeepsItsClass(t *testing.T) {
	cases := []struct {
		n    int
		prev uint32 // 0: no previous version
		want uint32
	}{
		{0, 0, 64},
		{32, 0, 64},
		{33, 0, 128}, // room for twice the elements
		{1000, 0, 2048},
		{64, 64, 64},      // still fits: kept
		{65, 64, 256},     // outgrew it: twice the elements again
		{300, 4096, 4096}, // shrank, but not below 1/16
		{255, 4096, 512},  // below 1/16 of 4096 (256): a smaller class
		{0, 64, 64},
	}
	for _, tc := range cases {
		var prev *Set
		if tc.prev > 0 {
			prev = &Set{Size: tc.prev}
		}
		if got := setSize(tc.n, prev); got != tc.want {
			t.Errorf("setSize(%d, previous size %d) = %d, want %d", tc.n, tc.prev, got, tc.want)
		}
	}
}

// peerModel is the guestbook with n addresses in the redis peer set.
func peerModel(n int) *selectors.Model {
	var ips []string
	for i := range n {
		ips = append(ips, netip.AddrFrom4([4]byte{10, 9, byte(i / 250), byte(1 + i%250)}).String())
	}
	return withAddressSet(guestbookModel(), "redis", single(ips...))
}

func TestCompilerGrowsASetPastItsSizeByReplacingThatSetAlone(t *testing.T) {
	var cc Compiler
	f := NewFake("nftpolicy")
	a := NewApplier(f)
	redisChanged := selectors.Changes{AddressSets: sets.New("redis")}
	apply := func(n int) (ApplyResult, Set) {
		t.Helper()
		rs, changed := cc.Compile(CompileInput{Table: "nftpolicy", Model: peerModel(n), Changes: redisChanged, Interfaces: guestbookInterfaces()})
		res, err := a.Apply(rs, changed)
		if err != nil {
			t.Fatalf("%d peers: %v", n, err)
		}
		if got, want := Render(f.Ruleset()), Render(rs); got != want {
			t.Fatalf("%d peers: the fake holds\n%s\nwant\n%s", n, got, want)
		}
		return res, setByName(t, f.Ruleset(), "peers_redis_v4")
	}
	_, s := apply(10)
	if s.Size != 64 {
		t.Fatalf("a set of 10 got size %d, want 64", s.Size)
	}
	// Growing within the size: elements only.
	if res, s := apply(64); res.FullReplace || !res.OnlyWidens || s.Size != 64 || len(s.Elements) != 64 {
		t.Fatalf("growing to 64 of 64: %+v, size %d, %d elements", res, s.Size, len(s.Elements))
	}
	// One more does not fit: that set is created again, bigger, with the chains that use it, and
	// nothing else is touched.
	// (A Compiler of its own: a ruleset that is not committed must not be followed by another compile
	// of the same Compiler, see Compiler.)
	var lookahead Compiler
	lookahead.Compile(CompileInput{Table: "nftpolicy", Model: peerModel(64), Interfaces: guestbookInterfaces()})
	grown, changed := lookahead.Compile(CompileInput{Table: "nftpolicy", Model: peerModel(65), Changes: redisChanged, Interfaces: guestbookInterfaces()})
	tx := Diff(f.Ruleset(), grown, changed)
	var touched []string
	for _, op := range tx.Ops {
		switch o := op.(type) {
		case DeleteSet:
			touched = append(touched, "delete set "+o.Name)
		case AddSet:
			touched = append(touched, "add set "+o.Set.Name)
		case FlushChain:
			touched = append(touched, "flush "+o.Name)
		case DeleteTable, AddTable:
			t.Fatalf("a set outgrowing its size replaced the table:\n%s", tx)
		}
	}
	want := []string{"flush pe_default_guestbook-egress", "delete set peers_redis_v4", "add set peers_redis_v4"}
	if !slices.Equal(touched, want) {
		t.Fatalf("a set outgrowing its size: %q, want %q\n%s", touched, want, tx)
	}
	if res, s := apply(65); res.FullReplace || s.Size != 256 || len(s.Elements) != 65 {
		t.Fatalf("growing past the size: %+v, size %d, %d elements; want size 256", res, s.Size, len(s.Elements))
	}
	// Shrinking a little keeps the size, and with it the element-only path.
	if res, s := apply(20); res.FullReplace || s.Size != 256 || res.Rules != 0 {
		t.Fatalf("shrinking to 20 of 256: %+v, size %d", res, s.Size)
	}
}

func TestFakeRefusesElementsBeyondTheSize(t *testing.T) {
	f := NewFake("nftpolicy")
	rs := &Ruleset{Table: "nftpolicy", Sets: []Set{{Name: "small", Type: KeyIPv4, Size: 2}}}
	if err := f.Run(Diff(nil, rs, FullChanges())); err != nil {
		t.Fatal(err)
	}
	three := AddElements{Set: "small", Type: KeyIPv4, Elements: []Element{{Addr: addr("10.0.0.1")}, {Addr: addr("10.0.0.2")}, {Addr: addr("10.0.0.3")}}}
	err := f.Run(&Transaction{Table: "nftpolicy", Ops: []Op{three}})
	if err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("three elements in a set of size 2: error %v, want one saying the set is full", err)
	}
	if got := len(f.Ruleset().Sets[0].Elements); got != 0 {
		t.Fatalf("the failed transaction left %d elements", got)
	}
}
