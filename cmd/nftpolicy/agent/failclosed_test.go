package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/nft"
)

// The fail-closed mode needs a valid prefix and an interface resolver: without one no pod would ever
// be programmed, and every pod of the node would be cut off.
func TestNewRejectsAFailClosedModeItCannotHonour(t *testing.T) {
	withResolver := Dataplane{Backend: nft.NewFake("nftpolicy"), Interfaces: nft.FakeInterfaces{}}
	cases := []struct {
		name string
		opts Options
		dp   Dataplane
		want string
	}{
		{"no interface resolver", Options{NodeName: "n1", PodInterfacePrefix: "cali"}, Dataplane{Backend: nft.NewFake("nftpolicy")}, "interface resolver"},
		{"a wildcard in the prefix", Options{NodeName: "n1", PodInterfacePrefix: "cali*"}, withResolver, "--pod-interface-prefix"},
		{"a prefix of lo", Options{NodeName: "n1", PodInterfacePrefix: "lo"}, withResolver, "loopback"},
	}
	for _, c := range cases {
		_, _, err := New(context.Background(), nil, c.opts, c.dp, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New() = %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
}
