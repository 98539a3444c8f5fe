package kernel

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/nft"
)

// TestWatchTellsForeignChangesFromOurs commits through the backend, changes another table, and changes
// our table with the nft command: only the last must be reported, naming what changed.
func TestWatchTellsForeignChangesFromOurs(t *testing.T) {
	ns, b := kernelNamespace(t)
	rs := compileGuestbook()
	rs.Table = kernelTable
	w, err := b.Watch(rs.Table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	expectNone := func(after string) {
		t.Helper()
		select {
		case ev := <-w.Events():
			t.Fatalf("after %s: unexpected event %+v", after, ev)
		case <-time.After(300 * time.Millisecond):
		}
	}
	expect := func(after, want string) {
		t.Helper()
		select {
		case ev := <-w.Events():
			if ev.Lost || !strings.Contains(ev.Detail, want) || !strings.Contains(ev.Detail, "nft (pid") {
				t.Fatalf("after %s: event %+v, want a seen change containing %q by nft", after, ev, want)
			}
		case <-time.After(time.Second):
			t.Fatalf("after %s: no event within 1s", after)
		}
	}

	a := nft.NewApplier(b)
	if _, err := a.Apply(rs, nft.FullChanges()); err != nil {
		t.Fatal(err)
	}
	expectNone("our full replacement")
	next := compileGuestbook()
	next.Table = kernelTable
	next.Sets[0].Elements = next.Sets[0].Elements[1:]
	if _, err := a.Apply(next, nft.Changes{Sets: sets.New(next.Sets[0].Name)}); err != nil {
		t.Fatal(err)
	}
	expectNone("our incremental change")

	foreignNft(t, ns, "add", "table", "inet", "other")
	foreignNft(t, ns, "add", "set", "inet", "other", "s", "{ type ipv4_addr; }")
	foreignNft(t, ns, "add", "element", "inet", "other", "s", "{ 10.1.2.3 }")
	expectNone("changes to another table")

	set, elem := firstSetWithElement(t, next)
	chain := next.Chains[len(next.Chains)-1].Name
	foreignNft(t, ns, "delete", "element", "inet", rs.Table, set, "{ "+elem+" }")
	expect("deleting an element", "set element deleted")
	foreignNft(t, ns, "add", "rule", "inet", rs.Table, chain, "accept")
	expect("adding a rule", "rule added")
	foreignNft(t, ns, "flush", "table", "inet", rs.Table)
	expect("flushing the table", "deleted")
	foreignNft(t, ns, "delete", "table", "inet", rs.Table)
	expect("deleting the table", "deleted")
}

// TestQuietFullReplacementStillTellsOfOtherCommits checks the generation check of an unwatched full
// replacement: a commit by someone else while the watch is away is reported as lost news.
func TestQuietFullReplacementStillTellsOfOtherCommits(t *testing.T) {
	ns, b := kernelNamespace(t)
	rs := compileGuestbook()
	rs.Table = kernelTable
	w, err := b.Watch(rs.Table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	// The commit stands in for ours (one generation) and someone else's (another).
	err = w.quietly(func() error {
		foreignNft(t, ns, "add", "table", "inet", "other")
		foreignNft(t, ns, "delete", "table", "inet", "other")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.Events():
		if !ev.Lost || !strings.Contains(ev.Detail, "generation") {
			t.Fatalf("event %+v, want lost news naming the generation", ev)
		}
	case <-time.After(time.Second):
		t.Fatal("a commit made while the watch was away went unreported")
	}
	// And a quiet full replacement of our own, alone, is news to no one.
	if err := b.Run(nft.Diff(nil, rs, nft.FullChanges())); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.Events():
		t.Fatalf("our own full replacement reported: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
}
