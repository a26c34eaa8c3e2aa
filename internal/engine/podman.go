package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"github.com/moby/moby/client"
)

// Podman reports whether the engine is Podman's Docker-compatible API (its answers carry a
// Libpod-Api-Version header). It is known after the first answer; false before.
func (c *Client) Podman() bool { return c.v.podman.Load() }

// ContainerInspect is the engine's inspect. From Podman it is corrected where Podman's
// Docker-compatible API describes a container other than the way it must be created again
// (podmanInspect); Raw, which lifecycle journals as the snapshot, is corrected the same way.
func (c *Client) ContainerInspect(ctx context.Context, id string, o client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	res, err := c.Client.ContainerInspect(ctx, id, o)
	if err != nil || !c.Podman() {
		return res, err
	}
	raw, changed, err := podmanInspect(res.Raw)
	if err != nil || !changed {
		return res, nil // nothing to correct, or not the JSON we know: left as the engine said
	}
	var out client.ContainerInspectResult
	if err := json.Unmarshal(raw, &out.Container); err != nil {
		return res, nil
	}
	out.Raw = raw
	return out, nil
}

// podmanInspect corrects what Podman 4's compatible inspect reports, checked against Podman
// 4.3 (docs/multi-host.md, "Podman"):
//   - ulimits are named RLIMIT_NOFILE where create wants nofile (create refuses its own names);
//   - Config.Env holds HOSTNAME=<hostname>, which Podman sets itself: copied, it would pin the old
//     container's hostname into the new one;
//   - a network endpoint's IPAMConfig is always empty, static address or not: the address the
//     container has is taken as its configured one, so a replacement keeps it (Podman, like
//     Docker, gives an address out at start, after the old container has stopped).
//
// It works on the raw JSON so that nothing the typed structs do not know is lost.
func podmanInspect(raw json.RawMessage) (json.RawMessage, bool, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, false, err
	}
	changed := false
	hc, _ := m["HostConfig"].(map[string]any)
	ulimits, _ := hc["Ulimits"].([]any)
	for _, u := range ulimits {
		if u, ok := u.(map[string]any); ok {
			if n, ok := u["Name"].(string); ok && strings.HasPrefix(n, "RLIMIT_") {
				u["Name"], changed = strings.ToLower(strings.TrimPrefix(n, "RLIMIT_")), true
			}
		}
	}
	cfg, _ := m["Config"].(map[string]any)
	if env, ok := cfg["Env"].([]any); ok {
		hostname, _ := cfg["Hostname"].(string)
		kept := env[:0:0]
		for _, e := range env {
			if s, _ := e.(string); hostname != "" && s == "HOSTNAME="+hostname {
				changed = true
				continue
			}
			kept = append(kept, e)
		}
		cfg["Env"] = kept
	}
	ns, _ := m["NetworkSettings"].(map[string]any)
	networks, _ := ns["Networks"].(map[string]any)
	for _, ep := range networks {
		ep, ok := ep.(map[string]any)
		if !ok || ep["IPAMConfig"] != nil {
			continue
		}
		ipam := map[string]any{}
		for from, to := range map[string]string{"IPAddress": "IPv4Address", "GlobalIPv6Address": "IPv6Address"} {
			if a, _ := ep[from].(string); a != "" {
				ipam[to] = a
			}
		}
		if len(ipam) > 0 {
			ep["IPAMConfig"], changed = ipam, true
		}
	}
	if !changed {
		return raw, false, nil
	}
	out, err := json.Marshal(m)
	return out, true, err
}
