package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/watcher-dev/watcher/failure"
)

// classified is a classified error: its reason (package failure), whether another attempt may help,
// and a message for people.
type classified struct {
	reason failure.Reason
	retry  bool
	msg    string
}

// Error codes from the distribution spec, by the reason they mean.
var codeReasons = map[transport.ErrorCode]failure.Reason{
	transport.ManifestUnknownErrorCode: failure.ManifestUnknown,
	transport.NameUnknownErrorCode:     failure.ManifestUnknown,
	transport.UnauthorizedErrorCode:    failure.Unauthorized,
	transport.DeniedErrorCode:          failure.Unauthorized,
	transport.TooManyRequestsErrorCode: failure.RateLimited,
	transport.NameInvalidErrorCode:     failure.InvalidReference,
	transport.TagInvalidErrorCode:      failure.InvalidReference,
}

// Status codes by the reason they mean; other 5xx are failure.RegistryUnavailable too (see classify).
var statusReasons = map[int]failure.Reason{
	http.StatusNotFound:        failure.ManifestUnknown,
	http.StatusUnauthorized:    failure.Unauthorized,
	http.StatusForbidden:       failure.Unauthorized,
	http.StatusTooManyRequests: failure.RateLimited,
	http.StatusRequestTimeout:  failure.RegistryUnavailable,
}

// classify maps an error from a registry request to a failure. It looks at types, status codes
// and the registry's error codes only, never at message text.
func classify(err error) classified {
	var rl *rateLimitedError
	if errors.As(err, &rl) {
		return classified{reason: failure.RateLimited, msg: err.Error()}
	}
	var ce *credentialError
	if errors.As(err, &ce) {
		return classified{reason: failure.Unauthorized, msg: err.Error()}
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return classifyStatus(te)
	}
	var ie *insecureError
	if errors.As(err, &ie) {
		return classified{reason: failure.RegistryUnavailable, msg: err.Error()}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The caller words these: it knows whether the lookup timed out or the check was stopped.
		return classified{reason: failure.RegistryUnavailable, msg: err.Error()}
	}
	return classified{reason: failure.RegistryUnavailable, retry: transient(err), msg: err.Error()}
}

func classifyStatus(te *transport.Error) classified {
	f := classified{msg: describe(te)}
	reason, ok := statusReasons[te.StatusCode]
	if !ok {
		// The status says little (400, 5xx): let the registry's error code decide.
		for _, d := range te.Errors {
			if r, ok := codeReasons[d.Code]; ok {
				reason = r
				break
			}
		}
	}
	switch {
	case reason != "":
		f.reason = reason
	case te.StatusCode >= 500:
		f.reason = failure.RegistryUnavailable
	default:
		f.reason = failure.RegistryUnavailable // an answer we do not understand; not worth repeating now
		return f
	}
	f.retry = f.reason == failure.RegistryUnavailable && (te.StatusCode >= 500 || te.StatusCode == http.StatusRequestTimeout)
	return f
}

// describe words a registry error answer: method, path, status and the registry's error codes.
func describe(te *transport.Error) string {
	var b strings.Builder
	if te.Request != nil {
		fmt.Fprintf(&b, "%s %s%s: ", te.Request.Method, te.Request.URL.Host, te.Request.URL.Path)
	}
	fmt.Fprintf(&b, "%d %s", te.StatusCode, http.StatusText(te.StatusCode))
	var codes []string
	for _, d := range te.Errors {
		codes = append(codes, string(d.Code))
	}
	if len(codes) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(codes, ", "))
	}
	return b.String()
}

// transient reports whether a transport-level error (no HTTP answer) may go away on its own.
func transient(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return !dns.IsNotFound
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
