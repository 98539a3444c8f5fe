package scenario

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Resolver returns the address of pod ("namespace/pod") in the family being run.
type Resolver func(pod string) (netip.Addr, error)

// placeholder is one {{...}} of an apply.
type placeholder struct {
	text      string // as written, braces included
	verb      string // "ip", "hostcidr" or "cidr"
	pod       string
	prefixLen int // cidr only
}

var placeholderPattern = regexp.MustCompile(`\{\{([^{}]*)\}\}`)

// Substitute replaces the placeholders of an apply with the addresses of family:
//
//	{{ip P}}        the primary IP of pod P
//	{{hostcidr P}}  that IP with a /32 (IPv4) or /128 (IPv6) mask
//	{{cidr P N}}    the network of prefix length N containing that IP, host bits zeroed
func Substitute(text string, family Family, resolve Resolver) (string, error) {
	return expandPlaceholders(text, func(ph placeholder) (string, error) {
		addr, err := resolve(ph.pod)
		if err != nil {
			return "", err
		}
		addr = addr.WithZone("")
		if family == IPv4 {
			addr = addr.Unmap()
		}
		if (family == IPv4) != addr.Is4() {
			return "", fmt.Errorf("pod %s: address %s is not %s", ph.pod, addr, family)
		}
		switch ph.verb {
		case "ip":
			return addr.String(), nil
		case "hostcidr":
			return netip.PrefixFrom(addr, family.bits()).String(), nil
		}
		if ph.prefixLen > family.bits() {
			return "", fmt.Errorf("prefix length %d is longer than an %s address", ph.prefixLen, family)
		}
		return netip.PrefixFrom(addr, ph.prefixLen).Masked().String(), nil
	})
}

// expandPlaceholders replaces every placeholder of text by what value returns for it. A malformed
// or unterminated placeholder is an error.
func expandPlaceholders(text string, value func(placeholder) (string, error)) (string, error) {
	var out strings.Builder
	last := 0
	for _, m := range placeholderPattern.FindAllStringSubmatchIndex(text, -1) {
		if err := noOpening(text[last:m[0]]); err != nil {
			return "", err
		}
		out.WriteString(text[last:m[0]])
		ph, err := parsePlaceholder(text[m[0]:m[1]], text[m[2]:m[3]])
		if err == nil {
			var v string
			v, err = value(ph)
			out.WriteString(v)
		}
		if err != nil {
			return "", fmt.Errorf("placeholder %s: %w", text[m[0]:m[1]], err)
		}
		last = m[1]
	}
	if err := noOpening(text[last:]); err != nil {
		return "", err
	}
	out.WriteString(text[last:])
	return out.String(), nil
}

// noOpening rejects a "{{" outside any well-formed placeholder.
func noOpening(s string) error {
	if i := strings.Index(s, "{{"); i >= 0 {
		return fmt.Errorf("malformed placeholder at %q", firstLine(s[i:]))
	}
	return nil
}

func parsePlaceholder(text, inner string) (placeholder, error) {
	words := strings.Fields(inner)
	if len(words) == 0 {
		return placeholder{}, errors.New("empty placeholder")
	}
	ph := placeholder{text: text, verb: words[0]}
	args := words[1:]
	switch ph.verb {
	case "ip", "hostcidr":
		if len(args) != 1 {
			return placeholder{}, fmt.Errorf("want {{%s namespace/pod}}", ph.verb)
		}
	case "cidr":
		if len(args) != 2 {
			return placeholder{}, errors.New("want {{cidr namespace/pod prefix-length}}")
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 0 {
			return placeholder{}, fmt.Errorf("prefix length %q is not a number from 0", args[1])
		}
		ph.prefixLen = n
	default:
		return placeholder{}, fmt.Errorf("unknown placeholder %q: want ip, hostcidr or cidr", ph.verb)
	}
	if _, _, err := splitRef(args[0]); err != nil {
		return placeholder{}, err
	}
	ph.pod = args[0]
	return ph, nil
}

// standIn is what the placeholder reads as when a file is checked before any pod exists.
func (ph placeholder) standIn() string {
	switch ph.verb {
	case "hostcidr":
		return "192.0.2.1/32"
	case "cidr":
		return "192.0.2.0/24"
	}
	return "192.0.2.1"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
