package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"testing"
)

// The sequence that TestApplierSequenceConvergesIncrementally runs against the fake, run against the
// kernel: after every transaction the kernel's listing holds exactly the compiled ruleset.
func TestApplierSequenceOnTheKernel(t *testing.T) {
	ns, backend := kernelNamespace(t)
	a := nft.NewApplier(backend)
	first := true
	runApplierSequence(t, a, func(desired *nft.Ruleset) {
		if first {
			// A full replacement creates objects in Render's order: the listings are equal as text.
			assertListing(t, ns, desired)
			first = false
			return
		}
		assertSameContent(t, ns, desired)
	})

	// A second agent process takes the table over in one transaction.
	restarted := nft.NewApplier(backend)
	rs := compileGuestbook()
	res, err := restarted.Apply(rs, nft.FullChanges())
	if err != nil {
		t.Fatalf("taking the table over: %v", err)
	}
	if !res.FullReplace {
		t.Errorf("want a full replacement on takeover, got %+v", res)
	}
	assertListing(t, ns, rs)
}
