package oracle

import "testing"

// The oracle reads stored ipBlocks as leniently as the API server's legacy parser, and no more.
func TestParseCIDR(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means an error
	}{
		{"198.18.0.0/15", "198.18.0.0/15"},
		{"198.18.7.9/15", "198.18.0.0/15"},
		{" 198.18.0.0/15 ", "198.18.0.0/15"},
		{"010.001.0.0/16", "10.1.0.0/16"},
		{"fd18::1:2/64", "fd18::/64"},
		{"198.18.0.0", ""},
		{"198.18.0.0/33", ""},
		{"fd18::/129", ""},
		{"fe80::%eth0/64", ""},
		{"1.2.3.4.5/8", ""},
		{"0400.0.0.0/8", ""},
		{"", ""},
	} {
		got, err := parseCIDR(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("parseCIDR(%q) = %s, want an error", tc.in, got)
		case tc.want != "" && (err != nil || got.String() != tc.want):
			t.Errorf("parseCIDR(%q) = %s, %v, want %s", tc.in, got, err, tc.want)
		}
	}
}
