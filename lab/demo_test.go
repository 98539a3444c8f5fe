package lab

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemo replays `make demo`: the guestbook's matrices before and after the redis policy, through
// redis-master's Service too, and its closing explain of busybox's denial.
func TestDemo(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	l, err := Start(ctx, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	var out bytes.Buffer
	if err := RunDemo(ctx, l, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"Why? $ kubectl nftpolicy explain default/busybox svc/default/redis-master 6379/tcp",
		"ingress of default/redis-master: DENIED: isolated by default/redis-policy",
		"peer 0 wants pods app=guestbook",
		"counter name \"deny-in_default\" drop",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out.String())
		}
	}
}
