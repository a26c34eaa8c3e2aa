package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxSecret bounds what is read from a <key>_file.
const maxSecret = 1 << 20

// source is where a value was set: a file and line, or an environment variable.
type source struct {
	file string
	line int
	env  string
}

type loader struct {
	s        settings
	src      map[string]source // dotted key -> where it was set; absent = default
	file     string            // config file path, "" = none
	warnings []string          // Config.Warnings
}

// Load reads the config file at path ("" = none: defaults), then applies the WATCHER_*
// variables of environ (os.Environ format), reads <key>_file secrets and validates the result.
// Environment variables beat the file. Watchtower's variables are read as LoadWatchtower does.
// Errors are *Error.
func Load(path string, environ []string) (Config, error) {
	c, _, err := loadAll(path, environ, &Watchtower{})
	return c, err
}

func loadAll(path string, environ []string, wt *Watchtower) (Config, []string, error) {
	l := &loader{
		s:    settings{Config: Default(), auth: map[string]*authSettings{}},
		src:  map[string]source{},
		file: path,
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return Config{}, nil, &Error{File: path, Msg: "cannot read config file: " + err.Error()}
		}
		if err := l.loadYAML(data); err != nil {
			return Config{}, nil, err
		}
		if err := l.checkFilePairs(); err != nil {
			return Config{}, nil, err
		}
	}
	if err := l.loadEnv(environ); err != nil {
		return Config{}, nil, err
	}
	notes, err := l.loadWatchtower(environ, wt)
	if err != nil {
		return Config{}, nil, err
	}
	if err := l.checkValues(&l.s); err != nil {
		return Config{}, nil, err
	}
	if err := l.checkHostValues(); err != nil {
		return Config{}, nil, err
	}
	if err := l.readSecrets(); err != nil {
		return Config{}, nil, err
	}
	c := l.s.Config
	if len(l.s.auth) > 0 {
		c.Registry.Auth = make(map[string]RegistryAuth, len(l.s.auth))
		for host, a := range l.s.auth {
			c.Registry.Auth[host] = RegistryAuth{Username: a.username, Password: a.password}
		}
	}
	for _, list := range []*[]string{&c.Notify.URLs, &c.Notify.On, &c.Update.Window, &c.Update.Approve} {
		if len(*list) == 0 {
			*list = nil
		}
	}
	if c.Hosts, err = l.resolveHosts(c.Watch.Scope); err != nil {
		return Config{}, nil, err
	}
	if err := l.validate(c); err != nil {
		return Config{}, nil, err
	}
	if c.HTTP.TLSKey != "" {
		if fi, err := os.Stat(c.HTTP.TLSKey); err == nil {
			l.warnReadable("http.tls_key", c.HTTP.TLSKey, fi)
		}
	}
	c.Warnings = l.warnings
	return c, notes, nil
}

// errAt returns an *Error about key, located where key was set.
func (l *loader) errAt(key, format string, args ...any) *Error {
	e := &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	if src, ok := l.src[key]; ok {
		if src.env != "" {
			e.Msg += " (from " + src.env + ")"
		} else {
			e.File, e.Line = src.file, src.line
		}
	}
	return e
}

// errNode returns an *Error about key located at node n of the config file.
func (l *loader) errNode(key string, n *yaml.Node, format string, args ...any) *Error {
	return &Error{Key: key, File: l.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)}
}

// set stores v (of the Go type matching f.kind) into the field.
func (l *loader) set(f *field, v any) {
	switch p := f.ref(&l.s).(type) {
	case *string:
		s := v.(string)
		if f.norm != nil {
			s = f.norm(s)
		}
		*p = s
	case *bool:
		*p = v.(bool)
	case *int:
		*p = v.(int)
	case *time.Duration:
		*p = v.(time.Duration)
	case *[]string:
		list := v.([]string)
		if f.norm != nil {
			list = slices.Clone(list)
			for i := range list {
				list[i] = f.norm(list[i])
			}
		}
		*p = list
	}
}

// zero returns the zero value of kind k.
func zero(k kind) any {
	switch k {
	case kBool:
		return false
	case kInt:
		return 0
	case kDuration:
		return time.Duration(0)
	case kList:
		return []string(nil)
	}
	return ""
}

// parseScalar converts a written value to the Go type of kind k (not kList).
func parseScalar(k kind, s string) (any, error) {
	switch k {
	case kBool:
		switch strings.ToLower(s) {
		case "true", "1", "yes":
			return true, nil
		case "false", "0", "no":
			return false, nil
		}
		return nil, fmt.Errorf("want true or false (or 1/0, yes/no), got %q", s)
	case kInt:
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("want an integer, got %q", s)
		}
		return n, nil
	case kDuration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("bad duration %q: want a Go duration like 30s, 5m or 1h30m", s)
		}
		if d < 0 {
			return nil, fmt.Errorf("negative duration %q", s)
		}
		return d, nil
	}
	return s, nil
}

// ----- YAML -----

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (l *loader) yamlErr(err error) *Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: l.file, Line: line, Msg: "bad YAML: " + m[2]}
	}
	return &Error{File: l.file, Msg: "bad YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func (l *loader) loadYAML(data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &Error{File: l.file, Msg: fmt.Sprintf("bad YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil
		}
		return l.yamlErr(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		if err != nil {
			return l.yamlErr(err)
		}
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		return &Error{File: l.file, Line: line, Msg: "more than one YAML document"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	return l.walk("", root)
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node holds, for type errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// pairs returns the key/value nodes of a mapping (none for null), refusing non-string and
// duplicate keys.
func (l *loader) pairs(key string, n *yaml.Node) ([][2]*yaml.Node, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		what := "the top level"
		if key != "" {
			what = key
		}
		return nil, l.errNode(key, n, "%s must be a mapping of keys, got %s", what, describe(n))
	}
	var out [][2]*yaml.Node
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, l.errNode(key, k, "keys must be strings, got %s", describe(k))
		}
		full := join(key, k.Value)
		if k.ShortTag() == "!!merge" {
			return nil, l.errNode(full, k, "merge keys (<<) are not supported")
		}
		if first, dup := seen[k.Value]; dup {
			return nil, l.errNode(full, k, "duplicate key (first set at line %d)", first)
		}
		seen[k.Value] = k.Line
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out, nil
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// walk applies the mapping n found at section prefix ("" = top level).
func (l *loader) walk(prefix string, n *yaml.Node) error {
	kvs, err := l.pairs(prefix, n)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		k, v := kv[0], kv[1]
		full := join(prefix, k.Value)
		switch {
		case strings.Contains(k.Value, "."):
			return l.unknownKey(full, k)
		case full == "registry.auth":
			if err := l.walkAuth(v); err != nil {
				return err
			}
		case full == "hosts":
			if err := l.walkHosts(v); err != nil {
				return err
			}
		case slices.Contains(sections, full):
			if err := l.walk(full, v); err != nil {
				return err
			}
		case fieldByKey[full] != nil:
			if err := l.setNode(fieldByKey[full], k, v); err != nil {
				return err
			}
		default:
			return l.unknownKey(full, k)
		}
	}
	return nil
}

func (l *loader) unknownKey(full string, k *yaml.Node) error {
	msg := "unknown key"
	if strings.Contains(k.Value, ".") && (fieldByKey[k.Value] != nil || slices.Contains(sections, k.Value)) {
		msg += "; write dotted keys nested, one level per line"
	} else if s := suggest(full, knownKeys()); s != "" {
		msg += "; did you mean " + s + "?"
	}
	return l.errNode(full, k, "%s", msg)
}

// setNode applies value node v of key node k to field f.
func (l *loader) setNode(f *field, k, v *yaml.Node) error {
	l.src[f.key] = source{file: l.file, line: k.Line}
	if isNull(v) {
		l.set(f, zero(f.kind))
		return nil
	}
	if f.kind == kList {
		if v.Kind != yaml.SequenceNode {
			return l.errNode(f.key, v, "want a list of strings, got %s", describe(v))
		}
		var list []string
		for _, e := range v.Content {
			e = deref(e)
			if e.Kind != yaml.ScalarNode || isNull(e) {
				return l.errNode(f.key, e, "list entries must be strings, got %s", describe(e))
			}
			list = append(list, e.Value)
		}
		if list == nil {
			list = []string{}
		}
		l.set(f, list)
		return nil
	}
	if v.Kind != yaml.ScalarNode {
		return l.errNode(f.key, v, "want %s, got %s", f.kind, describe(v))
	}
	val, err := parseScalar(f.kind, v.Value)
	if err != nil {
		return l.errNode(f.key, v, "%v", err)
	}
	l.set(f, val)
	return nil
}

// walkAuth applies registry.auth: host -> {username, password, password_file}.
func (l *loader) walkAuth(n *yaml.Node) error {
	hosts, err := l.pairs("registry.auth", n)
	if err != nil {
		return err
	}
	for _, hv := range hosts {
		hk, hn := hv[0], hv[1]
		host := hk.Value
		prefix := "registry.auth." + host
		l.src[prefix] = source{file: l.file, line: hk.Line}
		a := &authSettings{}
		l.s.auth[host] = a
		kvs, err := l.pairs(prefix, hn)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			k, v := kv[0], kv[1]
			full := prefix + "." + k.Value
			if !slices.Contains(authKeys, k.Value) {
				msg := "unknown key (want username, password or password_file)"
				if s := suggest(k.Value, authKeys); s != "" {
					msg = "unknown key; did you mean " + s + "?"
				}
				return l.errNode(full, k, "%s", msg)
			}
			l.src[full] = source{file: l.file, line: k.Line}
			var s string
			switch {
			case isNull(v):
			case v.Kind == yaml.ScalarNode:
				s = v.Value
			default:
				return l.errNode(full, v, "want a string, got %s", describe(v))
			}
			switch k.Value {
			case "username":
				a.username = s
			case "password":
				a.password = s
			case "password_file":
				a.passwordFile = s
			}
		}
	}
	return nil
}

// checkFilePairs refuses a config file that sets both a secret and its _file key.
func (l *loader) checkFilePairs() error {
	for _, p := range secretPairs {
		if nonEmpty(fieldByKey[p[0]].ref(&l.s)) && nonEmpty(fieldByKey[p[1]].ref(&l.s)) {
			return l.errAt(p[1], "set only one of %s and %s", p[0], p[1])
		}
	}
	for _, host := range sortedKeys(l.s.auth) {
		if a := l.s.auth[host]; a.password != "" && a.passwordFile != "" {
			key := "registry.auth." + host + ".password_file"
			return l.errAt(key, "set only one of password and password_file")
		}
	}
	return nil
}

func nonEmpty(p any) bool {
	switch p := p.(type) {
	case *string:
		return *p != ""
	case *[]string:
		return len(*p) > 0
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ----- environment -----

// loadEnv applies the WATCHER_* variables of environ; later duplicates win.
func (l *loader) loadEnv(environ []string) error {
	vars := map[string]string{}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, envPrefix) && name != envConfig && !kubernetesServiceVar(name) {
			vars[name] = val
		}
	}
	// groups of WATCHER_REGISTRY_AUTH_<NAME>_<ATTR>: NAME -> ATTR -> variable name
	groups := map[string]map[string]string{}
	for _, name := range sortedKeys(vars) {
		val := vars[name]
		if f := fieldByEnv[name]; f != nil {
			var v any
			switch {
			case val == "":
				v = zero(f.kind)
			case f.kind == kList:
				sep := cmp.Or(f.sep, ", \t\n")
				v = strings.FieldsFunc(val, func(r rune) bool { return strings.ContainsRune(sep, r) })
			default:
				var err error
				if v, err = parseScalar(f.kind, val); err != nil {
					return &Error{Key: f.key, Msg: fmt.Sprintf("%v (from %s)", err, name)}
				}
			}
			l.set(f, v)
			l.src[f.key] = source{env: name}
			continue
		}
		if group, attr, ok := splitAuthEnv(name); ok {
			if groups[group] == nil {
				groups[group] = map[string]string{}
			}
			groups[group][attr] = name
			continue
		}
		msg := "unknown environment variable"
		if strings.HasPrefix(name, envPrefix+"HOSTS") {
			msg += "; hosts are set in the config file only (a list of name, host, tls_* and scope)"
		} else if s := suggest(name, envNames()); s != "" {
			msg += "; did you mean " + s + "?"
		}
		return &Error{Key: name, Msg: msg}
	}
	// An environment variable for either key of a secret pair replaces both keys of the file.
	for _, p := range secretPairs {
		plain, file := l.src[p[0]].env, l.src[p[1]].env
		if plain != "" && file != "" && vars[plain] != "" && vars[file] != "" {
			return &Error{Key: p[1], Msg: fmt.Sprintf("set only one of %s and %s", plain, file)}
		}
		if plain != "" && file == "" {
			l.set(fieldByKey[p[1]], zero(kString))
			delete(l.src, p[1])
		}
		if file != "" && plain == "" {
			l.set(fieldByKey[p[0]], zero(fieldByKey[p[0]].kind))
			delete(l.src, p[0])
		}
	}
	return l.applyAuthEnv(groups, vars)
}

func envNames() []string {
	names := sortedKeys(fieldByEnv)
	return append(names, envConfig)
}

// authEnvSuffixes are the ATTRs of WATCHER_REGISTRY_AUTH_<NAME>_<ATTR>, longest first.
var authEnvSuffixes = []string{"PASSWORD_FILE", "PASSWORD", "USERNAME", "HOST"}

func splitAuthEnv(name string) (group, attr string, ok bool) {
	rest, ok := strings.CutPrefix(name, envAuthPrefix)
	if !ok {
		return "", "", false
	}
	for _, attr := range authEnvSuffixes {
		if group, ok := strings.CutSuffix(rest, "_"+attr); ok && group != "" {
			return group, attr, true
		}
	}
	return "", "", false
}

// authEnvName is the NAME that a registry host has in WATCHER_REGISTRY_AUTH_<NAME>_*: upper
// case, every character but letters and digits replaced by "_" (ghcr.io -> GHCR_IO).
func authEnvName(host string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, host)
}

// applyAuthEnv applies WATCHER_REGISTRY_AUTH_<NAME>_{HOST,USERNAME,PASSWORD,PASSWORD_FILE}.
// The host is the value of _HOST, or else the host of the config file's registry.auth whose
// authEnvName is NAME.
func (l *loader) applyAuthEnv(groups map[string]map[string]string, vars map[string]string) error {
	owner := map[string]string{} // host -> group
	for _, group := range sortedKeys(groups) {
		attrs := groups[group]
		var host string
		if hv, ok := attrs["HOST"]; ok {
			host = vars[hv]
			if host == "" {
				return &Error{Key: hv, Msg: "must name a registry host, like ghcr.io"}
			}
		} else {
			var matches []string
			for _, h := range sortedKeys(l.s.auth) {
				if authEnvName(h) == group {
					matches = append(matches, h)
				}
			}
			first := attrs[slices.Sorted(maps.Keys(attrs))[0]]
			switch len(matches) {
			case 0:
				return &Error{Key: first, Msg: fmt.Sprintf("no host under registry.auth in the config file matches %s; name the host with %s%s_HOST", group, envAuthPrefix, group)}
			case 1:
				host = matches[0]
			default:
				return &Error{Key: first, Msg: fmt.Sprintf("hosts %s all match %s; name the host with %s%s_HOST", strings.Join(matches, ", "), group, envAuthPrefix, group)}
			}
		}
		if other, ok := owner[host]; ok {
			return &Error{Key: envAuthPrefix + group + "_HOST", Msg: fmt.Sprintf("registry host %s is also set by %s%s_*", host, envAuthPrefix, other)}
		}
		owner[host] = group
		prefix := "registry.auth." + host
		a := l.s.auth[host]
		if a == nil {
			a = &authSettings{}
			l.s.auth[host] = a
			src := attrs["HOST"]
			l.src[prefix] = source{env: src}
		}
		if name, ok := attrs["USERNAME"]; ok {
			a.username = vars[name]
			l.src[prefix+".username"] = source{env: name}
		}
		pw, pwOK := attrs["PASSWORD"]
		pf, pfOK := attrs["PASSWORD_FILE"]
		if pwOK && pfOK && vars[pw] != "" && vars[pf] != "" {
			return &Error{Key: prefix + ".password_file", Msg: fmt.Sprintf("set only one of %s and %s", pw, pf)}
		}
		if pwOK || pfOK {
			a.password, a.passwordFile = vars[pw], vars[pf]
			delete(l.src, prefix+".password")
			delete(l.src, prefix+".password_file")
			if pwOK {
				l.src[prefix+".password"] = source{env: pw}
			}
			if pfOK {
				l.src[prefix+".password_file"] = source{env: pf}
			}
		}
	}
	return nil
}

// ----- secrets -----

// readSecret reads a secret file, without its trailing newline, and notes in the warnings (under
// key) when every user may read it.
func (l *loader) readSecret(key, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	l.warnReadable(key, path, fi)
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxSecret {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSecret)
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}

// readSecrets replaces each secret whose _file key is set by the file's content.
func (l *loader) readSecrets() error {
	for _, sec := range []struct {
		key, path string
		dst       *string
	}{{"http.token_file", l.s.tokenFile, &l.s.HTTP.Token}, {"http.webhook_secret_file", l.s.webhookSecretFile, &l.s.HTTP.WebhookSecret}} {
		if sec.path == "" {
			continue
		}
		v, err := l.readSecret(sec.key, sec.path)
		if err != nil {
			return l.errAt(sec.key, "cannot read secret: %v", err)
		}
		if v == "" {
			return l.errAt(sec.key, "secret file %s is empty", sec.path)
		}
		*sec.dst = v
	}
	if l.s.urlsFile != "" {
		text, err := l.readSecret("notify.urls_file", l.s.urlsFile)
		if err != nil {
			return l.errAt("notify.urls_file", "cannot read secret: %v", err)
		}
		var urls []string
		for line := range strings.Lines(text) {
			line = strings.TrimSpace(line)
			if line != "" && !strings.HasPrefix(line, "#") {
				urls = append(urls, line)
			}
		}
		l.s.Notify.URLs = urls
	}
	for _, host := range sortedKeys(l.s.auth) {
		a := l.s.auth[host]
		if a.passwordFile == "" {
			continue
		}
		key := "registry.auth." + host + ".password_file"
		pw, err := l.readSecret(key, a.passwordFile)
		if err != nil {
			return l.errAt(key, "cannot read secret: %v", err)
		}
		if pw == "" {
			return l.errAt(key, "secret file %s is empty", a.passwordFile)
		}
		a.password = pw
	}
	return nil
}

// warnReadable adds a warning when the secret file at path (whose Stat is fi) is readable by
// every user of the host: the watcher needs it readable by its own user or group only.
func (l *loader) warnReadable(key, path string, fi fs.FileInfo) {
	if fi.Mode().Perm()&0o004 == 0 {
		return
	}
	l.warnings = append(l.warnings, fmt.Sprintf("config: %s: %s is readable by every user (mode %04o); "+
		"make it readable by the watcher's user or group only (chmod 0440 with a group the watcher runs with, or 0400 owned by its user)",
		key, printable(path), fi.Mode().Perm()))
}

// kubernetesServiceVar reports whether name is one of the variables Kubernetes injects for a
// Service called "watcher" (WATCHER_SERVICE_HOST, WATCHER_PORT_8080_TCP, ...). They are not ours,
// and refusing them as unknown keys would stop the daemon from starting in such a cluster.
func kubernetesServiceVar(name string) bool {
	return strings.HasPrefix(name, "WATCHER_SERVICE_") || name == "WATCHER_PORT" || strings.HasPrefix(name, "WATCHER_PORT_")
}
