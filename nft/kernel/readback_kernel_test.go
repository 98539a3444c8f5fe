package kernel

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/test/nftlisting"
)

// foreignNft runs the nft command in the node's namespace: another writer of our table.
func foreignNft(t *testing.T, ns *netlab.Node, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestCheckFindsEveryForeignChange commits rulesets of every kind of set, map, chain and rule, checks
// that reading them back finds no difference, then makes each kind of foreign change and checks
// that the read-back names it.
func TestCheckFindsEveryForeignChange(t *testing.T) {
	for _, tc := range []struct {
		name string
		rs   func() *nft.Ruleset
	}{
		{"every kind", everyKindRuleset},
		{"guestbook", compileGuestbook},
		{"guestbook fail-closed", func() *nft.Ruleset {
			return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces(), PodInterfacePrefix: "veth"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, b := kernelNamespace(t)
			rs := tc.rs()
			a := nft.NewApplier(b)
			commit := func() {
				t.Helper()
				a.Forget()
				if _, err := a.Apply(rs, nft.FullChanges()); err != nil {
					t.Fatal(err)
				}
				if diffs, err := a.Verify(); err != nil || diffs != nil {
					t.Fatalf("read-back right after a commit: differences %q, error %v", diffs, err)
				}
			}
			commit()
			set, elem := firstSetWithElement(t, rs)
			chain := rs.Chains[len(rs.Chains)-1].Name
			for _, change := range []struct {
				name string
				args []string
				want string
			}{
				{"flush table", []string{"flush", "table", "inet", rs.Table}, "rules, not"},
				{"delete table", []string{"delete", "table", "inet", rs.Table}, "the table is missing"},
				{"delete element", []string{"delete", "element", "inet", rs.Table, set, "{ " + elem + " }"}, "set " + set + " lacks "},
				{"add rule", []string{"add", "rule", "inet", rs.Table, chain, "accept"}, "chain " + chain + " has"},
				{"insert rule", []string{"insert", "rule", "inet", rs.Table, chain, "counter"}, "chain " + chain + " has"},
				{"add chain", []string{"add", "chain", "inet", rs.Table, "foreign"}, "chain foreign is not ours"},
				{"add counter", []string{"add", "counter", "inet", rs.Table, "foreign"}, "counter foreign is not ours"},
			} {
				t.Run(change.name, func(t *testing.T) {
					commit()
					foreignNft(t, ns, change.args...)
					diffs, err := a.Verify()
					if err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(strings.Join(diffs, "\n"), change.want) {
						t.Fatalf("after %q: differences %q, want one containing %q", change.name, diffs, change.want)
					}
					if a.Committed() != nil {
						t.Fatal("a difference must make the next Apply replace the whole table")
					}
				})
			}
		})
	}
}

// firstSetWithElement returns a named set of rs holding an element and that element as nft writes it.
func firstSetWithElement(t *testing.T, rs *nft.Ruleset) (string, string) {
	t.Helper()
	set, elem, ok := nftlisting.AddressElement(rs)
	if !ok {
		t.Fatal("no address set with elements")
	}
	return set, elem
}
