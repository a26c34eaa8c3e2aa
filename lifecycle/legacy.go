package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Engines below API 1.44 (Docker 20.10 to 24) take a user-set MAC address only as
// Config.MacAddress in the create request, applied to the container's primary network. The typed
// client speaks API 1.52+ types, which no longer have that field, so that one request is written
// by hand over the client's own connection to the engine (its Dialer: the same socket, proxy or
// TLS connection every other request uses). The alternative, dropping the address, would give
// the container a different MAC after every update.

// rawDialer is what createLegacyMAC needs of the engine client (*client.Client has it).
type rawDialer interface {
	Dialer() func(context.Context) (net.Conn, error)
}

// canCreateLegacyMAC reports whether d can send a create request with Config.MacAddress.
func canCreateLegacyMAC(d Docker) bool {
	_, ok := d.(rawDialer)
	return ok
}

// createLegacyMAC sends POST /containers/create with plan.LegacyMAC as Config.MacAddress and
// returns the new container's ID, or an error classified as the client's would be (a 409 is a
// conflict carrying the engine's message, so isNameInUse works on it).
func createLegacyMAC(ctx context.Context, d Docker, name string, plan *createPlan) (string, error) {
	rd, ok := d.(rawDialer)
	if !ok {
		return "", cerrdefs.ErrNotImplemented.WithMessage("this engine connection cannot set a MAC address below API 1.44")
	}
	body, err := legacyCreateBody(plan)
	if err != nil {
		return "", err
	}
	dial := rd.Dialer()
	hc := &http.Client{Transport: &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		DisableKeepAlives: true,
	}}
	u := "http://" + client.DummyHost + "/v" + d.ClientVersion() + "/containers/create?" + url.Values{"name": {name}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return "", engineError(resp.StatusCode, raw)
	}
	var out container.CreateResponse
	if err := json.Unmarshal(raw, &out); err != nil || out.ID == "" {
		return "", fmt.Errorf("unreadable create response %q: %v", strings.TrimSpace(string(raw)), err)
	}
	return out.ID, nil
}

// legacyCreateBody is the create request's JSON with "MacAddress" added to the container config
// (CreateRequest embeds Config, so its fields are at the top level).
func legacyCreateBody(plan *createPlan) ([]byte, error) {
	b, err := json.Marshal(container.CreateRequest{Config: plan.Config, HostConfig: plan.Host, NetworkingConfig: plan.Network})
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	mac, _ := json.Marshal(plan.LegacyMAC)
	m["MacAddress"] = mac
	return json.Marshal(m)
}

// engineError turns an engine's error answer into the error the typed client would return.
func engineError(status int, body []byte) error {
	var e struct{ Message string }
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	switch status {
	case http.StatusBadRequest:
		return cerrdefs.ErrInvalidArgument.WithMessage(msg)
	case http.StatusForbidden:
		return cerrdefs.ErrPermissionDenied.WithMessage(msg)
	case http.StatusNotFound:
		return cerrdefs.ErrNotFound.WithMessage(msg)
	case http.StatusConflict:
		return cerrdefs.ErrConflict.WithMessage(msg)
	case http.StatusNotImplemented:
		return cerrdefs.ErrNotImplemented.WithMessage(msg)
	case http.StatusServiceUnavailable:
		return cerrdefs.ErrUnavailable.WithMessage(msg)
	}
	return cerrdefs.ErrUnknown.WithMessage(fmt.Sprintf("%s (HTTP %d)", msg, status))
}
