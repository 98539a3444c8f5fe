package kubelet

import (
	"fmt"
	"os/exec"
	"path"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Image is a container image played by local programs. Paths in Entrypoint, Cmd and a container's
// command are paths inside the image; Programs says which local executable each one is.
type Image struct {
	// Entrypoint and Cmd are the image's ENTRYPOINT and CMD.
	Entrypoint, Cmd []string
	// Programs maps an absolute path inside the image to a local executable.
	Programs map[string]string
}

// AgnhostRepository is the image of upstream's e2e test pods.
const AgnhostRepository = "registry.k8s.io/e2e-test-images/agnhost"

// AgnhostImage is agnhost's image, played by the agnhost binary at localPath: entrypoint
// /agnhost, default command "pause", as in the upstream Dockerfile, and the shell and tools of
// ShellImage that the real image's base also has (tests exec "sh -c ..." in agnhost pods).
func AgnhostImage(localPath string) Image {
	img := ShellImage()
	img.Entrypoint, img.Cmd = []string{"/agnhost"}, []string{"pause"}
	img.Programs["/agnhost"] = localPath
	return img
}

// shellPrograms are the host programs that ShellImage offers under /bin.
var shellPrograms = []string{
	"sh", "cat", "echo", "env", "false", "grep", "hostname", "ip", "ls", "nc", "ping", "sleep", "true", "tty", "wget",
}

// ShellImage is a busybox-like image played by the host's programs: /bin/sh and a few tools under
// /bin, those of shellPrograms found on the host's PATH; default command sh.
func ShellImage() Image {
	img := Image{Cmd: []string{"sh"}, Programs: map[string]string{}}
	for _, name := range shellPrograms {
		if local, err := exec.LookPath(name); err == nil {
			img.Programs["/bin/"+name] = local
		}
	}
	return img
}

// DefaultImages maps agnhost to the binary at agnhostPath and busybox to ShellImage.
func DefaultImages(agnhostPath string) map[string]Image {
	shell := ShellImage()
	return map[string]Image{
		AgnhostRepository:                         AgnhostImage(agnhostPath),
		"docker.io/library/busybox":               shell,
		"registry.k8s.io/e2e-test-images/busybox": shell,
	}
}

// imagePath is where a bare command name is looked up inside an image, as a runtime does with the
// image's PATH.
var imagePath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// repository returns an image reference without tag or digest, with the registry and library/
// that a short name implies ("busybox:1.36" -> "docker.io/library/busybox").
func repository(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	first, _, hasSlash := strings.Cut(ref, "/")
	switch {
	case !hasSlash:
		return "docker.io/library/" + ref
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		return "docker.io/" + ref
	}
	return ref
}

// imageError is why a container cannot start: its waiting reason and message.
type imageError struct {
	reason, message string
}

func (e *imageError) Error() string { return e.reason + ": " + e.message }

// lookupImage returns the image playing ref.
func lookupImage(images map[string]Image, ref string) (Image, error) {
	repo := repository(ref)
	for key, img := range images {
		if repository(key) == repo {
			return img, nil
		}
	}
	known := make([]string, 0, len(images))
	for key := range images {
		known = append(known, key)
	}
	sort.Strings(known)
	return Image{}, &imageError{
		reason: "ErrImageNeverPull",
		message: fmt.Sprintf("image %q is not mapped to local programs in this lab (mapped: %s)",
			ref, strings.Join(known, ", ")),
	}
}

// argv is the command line of a container, per the Kubernetes rules: the container's command
// replaces the image's entrypoint and its args replace the image's cmd; args without a command
// are passed to the entrypoint.
func argv(img Image, c *corev1.Container, env map[string]string) []string {
	var args []string
	switch {
	case len(c.Command) > 0:
		args = append(expandAll(c.Command, env), expandAll(c.Args, env)...)
	case len(c.Args) > 0:
		args = append(append([]string{}, img.Entrypoint...), expandAll(c.Args, env)...)
	default:
		args = append(append([]string{}, img.Entrypoint...), img.Cmd...)
	}
	return args
}

// resolve turns argv[0], a path or a bare name inside the image, into the local executable.
func (img Image) resolve(imageRef string, args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, &imageError{reason: "RunContainerError", message: fmt.Sprintf("no command given and image %q has none", imageRef)}
	}
	name := args[0]
	candidates := []string{name}
	if !strings.Contains(name, "/") {
		candidates = candidates[:0]
		for _, dir := range imagePath {
			candidates = append(candidates, path.Join(dir, name))
		}
	}
	for _, c := range candidates {
		if local, ok := img.Programs[path.Clean(c)]; ok {
			return append([]string{local}, args[1:]...), nil
		}
	}
	return nil, &imageError{
		reason:  "RunContainerError",
		message: fmt.Sprintf("image %q provides no program %q in this lab", imageRef, name),
	}
}

// expandAll expands $(VAR) references to the container's environment as the kubelet does: an
// undefined variable stays as written, and $$ is a literal $.
func expandAll(in []string, env map[string]string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, env)
	}
	return out
}

func expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
