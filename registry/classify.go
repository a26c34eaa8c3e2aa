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
)

// failure is a classified error: the reason DESIGN.md names, whether another attempt may help,
// and a message for people.
type failure struct {
	reason Reason
	retry  bool
	msg    string
}

// Error codes from the distribution spec, by the reason they mean.
var codeReasons = map[transport.ErrorCode]Reason{
	transport.ManifestUnknownErrorCode: ManifestUnknown,
	transport.NameUnknownErrorCode:     ManifestUnknown,
	transport.UnauthorizedErrorCode:    Unauthorized,
	transport.DeniedErrorCode:          Unauthorized,
	transport.TooManyRequestsErrorCode: RateLimited,
	transport.NameInvalidErrorCode:     InvalidReference,
	transport.TagInvalidErrorCode:      InvalidReference,
}

// Status codes by the reason they mean; other 5xx are RegistryUnavailable too (see classify).
var statusReasons = map[int]Reason{
	http.StatusNotFound:        ManifestUnknown,
	http.StatusUnauthorized:    Unauthorized,
	http.StatusForbidden:       Unauthorized,
	http.StatusTooManyRequests: RateLimited,
	http.StatusRequestTimeout:  RegistryUnavailable,
}

// classify maps an error from a registry request to a failure. It looks at types, status codes
// and the registry's error codes only, never at message text.
func classify(err error) failure {
	var rl *rateLimitedError
	if errors.As(err, &rl) {
		return failure{reason: RateLimited, msg: err.Error()}
	}
	var ce *credentialError
	if errors.As(err, &ce) {
		return failure{reason: Unauthorized, msg: err.Error()}
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return classifyStatus(te)
	}
	var ie *insecureError
	if errors.As(err, &ie) {
		return failure{reason: RegistryUnavailable, msg: err.Error()}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The caller words these: it knows whether the lookup timed out or the check was stopped.
		return failure{reason: RegistryUnavailable, msg: err.Error()}
	}
	return failure{reason: RegistryUnavailable, retry: transient(err), msg: err.Error()}
}

func classifyStatus(te *transport.Error) failure {
	f := failure{msg: describe(te)}
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
		f.reason = RegistryUnavailable
	default:
		f.reason = RegistryUnavailable // an answer we do not understand; not worth repeating now
		return f
	}
	f.retry = f.reason == RegistryUnavailable && (te.StatusCode >= 500 || te.StatusCode == http.StatusRequestTimeout)
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
