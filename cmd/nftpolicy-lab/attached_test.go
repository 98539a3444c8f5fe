package main

import "testing"

func TestParsePortProto(t *testing.T) {
	for in, want := range map[string]struct {
		port  int
		proto string
	}{
		"80":        {80, "TCP"},
		"80/tcp":    {80, "TCP"},
		"53/UDP":    {53, "UDP"},
		"65535/udp": {65535, "UDP"},
	} {
		port, proto, err := parsePortProto(in)
		if err != nil || port != want.port || proto != want.proto {
			t.Errorf("parsePortProto(%q) = %d, %q, %v; want %d, %q", in, port, proto, err, want.port, want.proto)
		}
	}
	for _, in := range []string{"", "0", "65536/tcp", "http/tcp", "80/sctp", "80/icmp"} {
		if _, _, err := parsePortProto(in); err == nil {
			t.Errorf("parsePortProto(%q) accepted it", in)
		}
	}
}
