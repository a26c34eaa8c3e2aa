package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MinSecretLen is the shortest http.token accepted: 16 characters of a random token are beyond
// any guessing, which the API only slows down.
const MinSecretLen = 16

// secretKeys are the keys whose values are never shown in an error.
var secretKeys = map[string]bool{"http.token": true, "http.webhook_secret": true, "notify.urls": true}

// badChar describes the first control character (newlines, tabs, NUL, DEL, C1 controls) or
// invalid UTF-8 in s, quoted, or returns "" when there is none. multiline allows \n, \r and \t.
func badChar(s string, multiline bool) string {
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			return fmt.Sprintf("invalid UTF-8 (byte %q)", s[i])
		case multiline && (r == '\n' || r == '\r' || r == '\t'):
		case unicode.IsControl(r):
			return "a control character " + strconv.QuoteRune(r)
		}
	}
	return ""
}

// checkValues refuses control characters and invalid UTF-8 in every string value of s and of
// registry.auth: a newline in a scope, a path or a URL is a copy-and-paste accident that would
// otherwise end up in labels, headers or log lines. notify.template alone may span lines. Secret
// values are never shown. Load runs it before reading the _file secrets (their paths) and after.
func (l *loader) checkValues(s *settings) error {
	for i := range fields {
		f := &fields[i]
		var vals []string
		switch p := f.ref(s).(type) {
		case *string:
			vals = []string{*p}
		case *[]string:
			vals = *p
		}
		for _, v := range vals {
			if bad := badChar(v, f.key == "notify.template"); bad != "" {
				key, from := l.secretSource(f.key)
				return l.valueErr(key, from, v, bad, secretKeys[f.key])
			}
		}
	}
	for _, host := range sortedKeys(l.s.auth) {
		a := l.s.auth[host]
		prefix := "registry.auth." + host
		pwKey, pwFrom := prefix+".password", ""
		if a.passwordFile != "" {
			pwKey, pwFrom = prefix+".password_file", a.passwordFile
		}
		for _, v := range []struct {
			key, from, val string
			secret         bool
		}{
			{prefix, "", host, false}, {prefix + ".username", "", a.username, false},
			{prefix + ".password_file", "", a.passwordFile, false}, {pwKey, pwFrom, a.password, true},
		} {
			if bad := badChar(v.val, false); bad != "" {
				return l.valueErr(v.key, v.from, v.val, bad, v.secret)
			}
		}
	}
	return nil
}

// secretSource is the key a value was set by: key itself, or its _file key and the file when
// it was read from one.
func (l *loader) secretSource(key string) (string, string) {
	switch {
	case key == "http.token" && l.s.tokenFile != "":
		return "http.token_file", l.s.tokenFile
	case key == "http.webhook_secret" && l.s.webhookSecretFile != "":
		return "http.webhook_secret_file", l.s.webhookSecretFile
	case key == "notify.urls" && l.s.urlsFile != "":
		return "notify.urls_file", l.s.urlsFile
	}
	return key, ""
}

// valueErr is the error about value v of key holding bad; from is the secret file it was read
// from, if any.
func (l *loader) valueErr(key, from, v, bad string, secret bool) *Error {
	what := "the value"
	if from != "" {
		what = "the value in " + printable(from)
	}
	if secret {
		return l.errAt(key, "%s holds %s (the secret is not shown); values are one line of printable text", what, bad)
	}
	const max = 80
	if len(v) > max {
		v = v[:max] + "…"
	}
	return l.errAt(key, "%s %s holds %s; values are one line of printable text", what, strconv.Quote(v), bad)
}

// checkSecret refuses an http.token or http.webhook_secret (key) that is short or holds
// whitespace (checkValues has refused control characters already).
func (l *loader) checkSecret(key, secret string) error {
	if secret == "" {
		return nil
	}
	noun := "token"
	if key == "http.webhook_secret" {
		noun = "secret"
	}
	key, from := l.secretSource(key)
	what := "the " + noun
	if from != "" {
		what += " in " + printable(from)
	}
	if strings.IndexFunc(secret, unicode.IsSpace) >= 0 {
		return l.errAt(key, "%s holds whitespace (the %s is not shown); use a random %s such as `head -c 32 /dev/urandom | base64`", what, noun, noun)
	}
	if n := utf8.RuneCountInString(secret); n < MinSecretLen {
		return l.errAt(key, "%s has %d characters, at least %d are needed; use a random %s such as `head -c 32 /dev/urandom | base64`", what, n, MinSecretLen, noun)
	}
	return nil
}
