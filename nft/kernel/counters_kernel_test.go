package kernel

import (
	"os/exec"
	"testing"

	"github.com/nftpolicy/nftpolicy/nft"
)

// countingRuleset is a table whose input chain counts every packet delivered to the namespace in
// counter "seen", and, when withSpare, references a second counter "spare" too.
func countingRuleset(comment string, withSpare bool) *nft.Ruleset {
	rs := &nft.Ruleset{
		Table:    kernelTable,
		Counters: []nft.Counter{{Name: "seen"}},
		Chains: []nft.Chain{{Name: "input", Base: &nft.BaseHook{Hook: nft.HookInput}, Rules: []nft.Rule{
			{Counter: "seen", Verdict: nft.Verdict{Kind: nft.Accept}, Comment: comment},
		}}},
	}
	if withSpare {
		rs.Counters = append(rs.Counters, nft.Counter{Name: "spare"})
		rs.Chains[0].Rules = append([]nft.Rule{{Matches: []nft.Match{nft.SourceIsLocal{}}, Counter: "spare"}}, rs.Chains[0].Rules...)
	}
	return rs
}

// TestCountersSurviveAnEditAndLeaveWithTheirRules: the counters of a committed ruleset read back
// as the kernel lists them; traffic makes one count; an edit that refills the chain keeps its value
// and deletes the counter no rule uses any more; the read-back compares counter objects by name.
func TestCountersSurviveAnEditAndLeaveWithTheirRules(t *testing.T) {
	ns, b := kernelNamespace(t)
	a := nft.NewApplier(b)
	first := countingRuleset("first", true)
	if _, err := a.Apply(first, nft.FullChanges()); err != nil {
		t.Fatal(err)
	}
	assertListing(t, ns, first)
	if diffs, err := a.Verify(); err != nil || diffs != nil {
		t.Fatalf("read-back after the commit: differences %q, error %v", diffs, err)
	}
	if out, err := exec.Command("ip", "netns", "exec", ns.Name, "ping", "-c", "3", "-i", "0.2", "-W", "1", "127.0.0.1").CombinedOutput(); err != nil {
		t.Fatalf("ping in the namespace: %v\n%s", err, out)
	}
	before, err := b.Counters(kernelTable)
	if err != nil {
		t.Fatal(err)
	}
	if before["seen"].Packets < 3 || before["seen"].Bytes == 0 {
		t.Fatalf("counter seen after 3 echo requests and replies: %+v", before["seen"])
	}
	if _, ok := before["spare"]; !ok || len(before) != 2 {
		t.Fatalf("counters %+v, want seen and spare", before)
	}

	edited := countingRuleset("edited", false)
	res, err := a.Apply(edited, nft.FullChanges())
	if err != nil {
		t.Fatal(err)
	}
	if res.FullReplace {
		t.Fatal("the edit replaced the whole table, which resets every counter")
	}
	assertListing(t, ns, edited)
	after, err := b.Counters(kernelTable)
	if err != nil {
		t.Fatal(err)
	}
	if after["seen"].Packets < before["seen"].Packets {
		t.Errorf("counter seen went from %d to %d packets across an edit", before["seen"].Packets, after["seen"].Packets)
	}
	if _, ok := after["spare"]; ok || len(after) != 1 {
		t.Errorf("counters after the edit %+v, want spare deleted with its rule", after)
	}
	if diffs, err := a.Verify(); err != nil || diffs != nil {
		t.Fatalf("read-back after the edit: differences %q, error %v", diffs, err)
	}
}

func TestCountersOfAMissingTable(t *testing.T) {
	_, b := kernelNamespace(t)
	got, err := b.Counters("absent")
	if err != nil || len(got) != 0 {
		t.Errorf("counters of a missing table: %v, error %v; want none and no error", got, err)
	}
}
