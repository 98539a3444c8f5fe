package kernel

import (
	"reflect"
	"testing"

	"github.com/nftpolicy/nftpolicy/nft"
)

// TestDropLogLowersAndReadsBack commits the guestbook with drop logging, requires nft to list it as
// Render writes it, lets the kernel's dynamic set gain an element (as a logged drop would add one),
// and requires the read-back to find no difference and to raise exactly the committed ruleset: the
// elements of a dynamic set are the kernel's.
func TestDropLogLowersAndReadsBack(t *testing.T) {
	ns, b := kernelNamespace(t)
	rs := compileGuestbookDropLog()
	a := nft.NewApplier(b)
	if _, err := a.Apply(rs, nft.FullChanges()); err != nil {
		t.Fatal(err)
	}
	assertListing(t, ns, rs)
	foreignNft(t, ns, "add", "element", "inet", rs.Table, "droplog-pairs-v4", "{ 198.18.1.21 . 198.18.0.10 }")
	if diffs, err := a.Verify(); err != nil || diffs != nil {
		t.Fatalf("read-back with a pair in the dynamic set: differences %q, error %v", diffs, err)
	}
	got, err := b.ReadRuleset(rs.Table)
	if err != nil {
		t.Fatal(err)
	}
	for ci := range got.Chains {
		for ri := range got.Chains[ci].Rules {
			got.Chains[ci].Rules[ri].Handle = 0
		}
	}
	if !reflect.DeepEqual(normalized(got), normalized(rs)) {
		t.Errorf("read back:\n%s\ncommitted:\n%s", nft.Render(got), nft.Render(rs))
	}
	// A foreign change of a log rule is a difference like any other.
	foreignNft(t, ns, "add", "rule", "inet", rs.Table, "in_default_redis-master", "log", "prefix", "np/x", "group", "8")
	if diffs, err := a.Verify(); err != nil || diffs == nil {
		t.Fatalf("a foreign log rule: differences %q, error %v", diffs, err)
	}
}
