package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// hostKeys are the keys of one hosts entry, in the order config.example.yaml shows them.
var hostKeys = []string{"name", "host", "tls_ca_file", "tls_cert_file", "tls_key_file", "tls_verify", "scope"}

// hostName is what a host may be called: it becomes a metric label value, a query parameter and
// the prefix of "host/container" in plans and reports, so one word without "/".
var hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// hostSettings is one hosts entry as written, with the lines its keys were set at.
type hostSettings struct {
	v            Host
	index        int            // position in the list, from 0
	line         int            // line of the entry
	lines        map[string]int // key -> line
	scopeSet     bool
	tlsVerifySet bool
}

// key is the dotted key of k in this entry, as errors name it: hosts.NAME.k once the entry has a
// good, unique name, else hosts[INDEX].k.
func (h *hostSettings) key(k string, named bool) string {
	if named {
		return "hosts." + h.v.Name + "." + k
	}
	return "hosts[" + strconv.Itoa(h.index) + "]." + k
}

// hostErr returns an *Error about key k of this entry, located at the line k was set at (or the
// entry's own line).
func (l *loader) hostErr(h *hostSettings, k string, named bool, format string, args ...any) *Error {
	line, ok := h.lines[k]
	if !ok {
		line = h.line
	}
	return &Error{Key: h.key(k, named), File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// walkHosts applies hosts: a list of mappings, each one engine.
func (l *loader) walkHosts(n *yaml.Node) error {
	l.s.hosts = nil
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return l.errNode("hosts", n, "want a list of hosts (each with name and host), got %s", describe(n))
	}
	for i, e := range n.Content {
		e = deref(e)
		h := &hostSettings{index: i, line: e.Line, lines: map[string]int{}, v: Host{TLSVerify: true}}
		prefix := "hosts[" + strconv.Itoa(i) + "]"
		if e.Kind != yaml.MappingNode {
			return l.errNode(prefix, e, "want a mapping with name and host, got %s", describe(e))
		}
		kvs, err := l.pairs(prefix, e)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			if err := l.setHostKey(h, prefix, kv[0], kv[1]); err != nil {
				return err
			}
		}
		l.s.hosts = append(l.s.hosts, h)
	}
	return nil
}

// setHostKey applies one key of a hosts entry.
func (l *loader) setHostKey(h *hostSettings, prefix string, k, v *yaml.Node) error {
	full := prefix + "." + k.Value
	if !slices.Contains(hostKeys, k.Value) {
		msg := "unknown key (want " + strings.Join(hostKeys, ", ") + ")"
		if s := suggest(k.Value, hostKeys); s != "" {
			msg = "unknown key; did you mean " + s + "?"
		}
		return l.errNode(full, k, "%s", msg)
	}
	h.lines[k.Value] = k.Line
	if v.Kind != yaml.ScalarNode {
		want := kString
		if k.Value == "tls_verify" {
			want = kBool
		}
		return l.errNode(full, v, "want %s, got %s", want, describe(v))
	}
	s := v.Value
	if isNull(v) {
		s = ""
	}
	switch k.Value {
	case "name":
		h.v.Name = s
	case "host":
		h.v.Host = s
	case "tls_ca_file":
		h.v.TLSCAFile = s
	case "tls_cert_file":
		h.v.TLSCertFile = s
	case "tls_key_file":
		h.v.TLSKeyFile = s
	case "scope":
		h.v.Scope, h.scopeSet = s, true
	case "tls_verify":
		b, err := parseScalar(kBool, s)
		if err != nil {
			return l.errNode(full, v, "%v", err)
		}
		h.v.TLSVerify, h.tlsVerifySet = b.(bool), true
	}
	return nil
}

// hostValues lists an entry's string values by key, for checkValues.
func (h *hostSettings) hostValues() [][2]string {
	return [][2]string{{"name", h.v.Name}, {"host", h.v.Host}, {"tls_ca_file", h.v.TLSCAFile},
		{"tls_cert_file", h.v.TLSCertFile}, {"tls_key_file", h.v.TLSKeyFile}, {"scope", h.v.Scope}}
}

// checkHostValues refuses control characters in the hosts entries (see checkValues).
func (l *loader) checkHostValues() error {
	for _, h := range l.s.hosts {
		for _, kv := range h.hostValues() {
			if bad := badChar(kv[1], false); bad != "" {
				v := kv[1]
				if len(v) > 80 {
					v = v[:80] + "…"
				}
				return l.hostErr(h, kv[0], false, "the value %s holds %s; values are one line of printable text", strconv.Quote(v), bad)
			}
		}
	}
	return nil
}

// resolveHosts validates the hosts entries and returns them with their defaults applied: a
// unique name, an engine URL this watcher can reach, TLS files that can be read and belong
// together, and the scope (watch.scope unless the entry sets its own). Errors name the entry
// and the key; problems that are no error (plain TCP, no verification, a key file every user
// may read) are added to the warnings.
func (l *loader) resolveHosts(watchScope string) ([]Host, error) {
	if len(l.s.hosts) == 0 {
		return nil, nil
	}
	seen := map[string]*hostSettings{}
	for _, h := range l.s.hosts {
		switch first := seen[h.v.Name]; {
		case h.v.Name == "":
			return nil, l.hostErr(h, "name", false, "missing: every host needs a name (shown in reports, the API and metrics)")
		case !hostName.MatchString(h.v.Name):
			return nil, l.hostErr(h, "name", false, "%q is not a host name: letters, digits, '.', '_' and '-' (starting with a letter or digit), at most 63", h.v.Name)
		case first != nil:
			return nil, l.hostErr(h, "name", false, "duplicate name %q (first used by hosts[%d] at line %d)", h.v.Name, first.index, first.line)
		}
		seen[h.v.Name] = h
	}
	out := make([]Host, 0, len(l.s.hosts))
	for _, h := range l.s.hosts {
		if err := l.checkHost(h); err != nil {
			return nil, err
		}
		if !h.scopeSet {
			h.v.Scope = watchScope
		}
		out = append(out, h.v)
	}
	return out, nil
}

// checkHost checks one named entry's URL and TLS settings.
func (l *loader) checkHost(h *hostSettings) error {
	scheme, msg := engineURL(h.v.Host)
	if msg != "" {
		return l.hostErr(h, "host", true, "%s", msg)
	}
	h.v.TLS = h.v.TLSCAFile != "" || h.v.TLSCertFile != "" || h.v.TLSKeyFile != "" || h.tlsVerifySet
	if scheme != "tcp" {
		for _, k := range []string{"tls_ca_file", "tls_cert_file", "tls_key_file", "tls_verify"} {
			if _, set := h.lines[k]; set {
				return l.hostErr(h, k, true, "TLS applies to tcp:// hosts only, and %s is %s", h.v.Host, scheme+"://")
			}
		}
		return nil
	}
	if !h.v.TLS {
		l.warnings = append(l.warnings, fmt.Sprintf("config: %s: %s is plain TCP: anyone who can reach it controls that engine, and its traffic is readable; "+
			"use TLS (tls_ca_file, tls_cert_file, tls_key_file) or a socket proxy reachable only from here (docs/multi-host.md)", h.key("host", true), h.v.Host))
		return nil
	}
	if !h.v.TLSVerify {
		l.warnings = append(l.warnings, fmt.Sprintf("config: %s: false: the engine's certificate is not verified, so anyone on the way to %s can pose as it", h.key("tls_verify", true), h.v.Host))
	}
	return l.checkTLSFiles(h)
}

// engineURL returns the scheme of an engine URL watcher can use, or why it cannot.
func engineURL(s string) (scheme, msg string) {
	const want = "want unix:///path/to/docker.sock or tcp://host:port"
	if s == "" {
		return "", "missing: " + want
	}
	u, err := url.Parse(s)
	if err != nil || !strings.Contains(s, "://") {
		return "", fmt.Sprintf("%q is not an engine URL: %s", s, want)
	}
	switch u.Scheme {
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return "", fmt.Sprintf("%q: a unix socket needs an absolute path, unix:///path/to/docker.sock (three slashes)", s)
		}
	case "tcp":
		host, port, err := net.SplitHostPort(u.Host)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return "", fmt.Sprintf("%q: want tcp://host:port with a port (Docker listens on 2376 with TLS)", s)
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Sprintf("%q: want tcp://host:port and nothing else (no user, path or query)", s)
		}
	case "ssh":
		return "", fmt.Sprintf("%q: ssh:// is not supported: Docker's ssh transport runs the ssh client and `docker system dial-stdio`, which the watcher's image does not have; "+
			"forward the remote socket (ssh -NL /run/watcher/edge.sock:/var/run/docker.sock edge) and use unix://, or use tcp:// with TLS (docs/multi-host.md)", s)
	default:
		return "", fmt.Sprintf("%q: unsupported scheme %q: %s", s, u.Scheme, want)
	}
	return u.Scheme, ""
}

// checkTLSFiles checks that the entry's TLS files can be read and belong together: a CA file
// with at least one certificate, a client certificate that parses and has not expired, and the
// private key that matches it.
func (l *loader) checkTLSFiles(h *hostSettings) error {
	switch {
	case h.v.TLSCertFile != "" && h.v.TLSKeyFile == "":
		return l.hostErr(h, "tls_cert_file", true, "set without tls_key_file (the client certificate needs its private key)")
	case h.v.TLSKeyFile != "" && h.v.TLSCertFile == "":
		return l.hostErr(h, "tls_key_file", true, "set without tls_cert_file (the private key needs its client certificate)")
	}
	if h.v.TLSCAFile != "" {
		data, err := readPEM(h.v.TLSCAFile)
		if err != nil {
			return l.hostErr(h, "tls_ca_file", true, "cannot read: %v", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(data) {
			return l.hostErr(h, "tls_ca_file", true, "%s holds no PEM certificate", printable(h.v.TLSCAFile))
		}
	}
	if h.v.TLSCertFile == "" {
		return nil
	}
	certPEM, err := readPEM(h.v.TLSCertFile)
	if err != nil {
		return l.hostErr(h, "tls_cert_file", true, "cannot read: %v", err)
	}
	leaf, err := firstCertificate(certPEM)
	if err != nil {
		return l.hostErr(h, "tls_cert_file", true, "%s: %v", printable(h.v.TLSCertFile), err)
	}
	if time.Now().After(leaf.NotAfter) {
		return l.hostErr(h, "tls_cert_file", true, "%s expired on %s", printable(h.v.TLSCertFile), leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	keyPEM, err := readPEM(h.v.TLSKeyFile)
	if err != nil {
		return l.hostErr(h, "tls_key_file", true, "cannot read: %v", err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return l.hostErr(h, "tls_key_file", true, "%s does not belong to tls_cert_file %s: %v", printable(h.v.TLSKeyFile), printable(h.v.TLSCertFile), strings.TrimPrefix(err.Error(), "tls: "))
	}
	if fi, err := os.Stat(h.v.TLSKeyFile); err == nil {
		l.warnReadable(h.key("tls_key_file", true), h.v.TLSKeyFile, fi)
	}
	return nil
}

// readPEM reads a certificate or key file (regular, at most maxSecret bytes).
func readPEM(path string) ([]byte, error) {
	if err := checkReadable(path); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err == nil && len(data) > maxSecret {
		err = fmt.Errorf("%s is larger than %d bytes", path, maxSecret)
	}
	return data, err
}

// firstCertificate parses the first CERTIFICATE block of data.
func firstCertificate(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("holds no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("unreadable certificate: %v", err)
			}
			return c, nil
		}
	}
}
