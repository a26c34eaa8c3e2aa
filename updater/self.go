package updater

import (
	"context"
	"os"
	"regexp"

	"github.com/moby/moby/client"
)

var containerIDInPath = regexp.MustCompile(`(?:/containers/|/docker/|docker-)([0-9a-f]{64})(?:/|\.scope|$)`)

// DetectSelf finds the watcher's own container, so a cycle never replaces the process running
// it. It reads the engine-managed mounts (/etc/hostname and friends live under
// .../containers/<id>/), then cgroup paths, then falls back to the hostname, which defaults to the
// short container ID. Every guess is confirmed by inspecting it; "" means not in a container of
// this engine.
func DetectSelf(ctx context.Context, e Engine) string {
	var candidates []string
	for _, f := range []string{"/proc/self/mountinfo", "/proc/self/cgroup"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, m := range containerIDInPath.FindAllStringSubmatch(string(b), -1) {
			candidates = append(candidates, m[1])
		}
	}
	if h, err := os.Hostname(); err == nil && hexID.MatchString(h) {
		candidates = append(candidates, h)
	}
	seen := map[string]bool{}
	for _, c := range candidates {
		if seen[c] {
			continue
		}
		seen[c] = true
		if res, err := e.ContainerInspect(ctx, c, client.ContainerInspectOptions{}); err == nil {
			return res.Container.ID
		}
	}
	return ""
}
