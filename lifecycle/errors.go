package lifecycle

import (
	"fmt"
	"strings"

	"github.com/watcher-dev/watcher/failure"
)

// Error is a failed update step: where (Stage), why (Reason, a constant above), and details.
type Error struct {
	ContainerID string
	Stage       failure.Stage
	Reason      failure.Reason
	Message     string // human detail, e.g. "exit code 139 (SIGSEGV: segmentation fault)"
	Err         error  // the underlying error, if any

	// notTried: a RunContainerError whose start the engine never tried (the request failed on
	// the way): not a verdict on the new container (see causeOf).
	notTried bool
}

var _ error = (*Error)(nil)

// Error is one line: stage, reason, container and detail.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: container %s", e.Stage, e.Reason, shortID(e.ContainerID))
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Err != nil && (e.Message == "" || !strings.Contains(e.Message, e.Err.Error())) {
		b.WriteString(": " + e.Err.Error())
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

func newError(id string, stage failure.Stage, reason failure.Reason, msg string, err error) *Error {
	return &Error{ContainerID: id, Stage: stage, Reason: reason, Message: msg, Err: err}
}

// ExitMeaning explains an exit code in a few words (the failure table of docs/api.md shows them
// in messages): 1 application error, 126 not executable, 127 not found, 128+n signal n.
func ExitMeaning(code int) string {
	switch code {
	case 0:
		return "exited cleanly"
	case 1:
		return "application error"
	case 125:
		return "the container runtime failed"
	case 126:
		return "command not executable"
	case 127:
		return "command not found"
	case 128:
		return "could not be started"
	case 130:
		return "SIGINT"
	case 134:
		return "SIGABRT: aborted"
	case 137:
		return "SIGKILL: killed"
	case 139:
		return "SIGSEGV: segmentation fault"
	case 143:
		return "SIGTERM: terminated"
	}
	if code > 128 && code < 128+65 {
		return fmt.Sprintf("killed by signal %d", code-128)
	}
	return "application error"
}

func exitMessage(code int) string {
	return fmt.Sprintf("exit code %d (%s)", code, ExitMeaning(code))
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
