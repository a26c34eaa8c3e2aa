package failure

import (
	"os"
	"strings"
	"testing"
)

// TestDocumented keeps docs/api.md's table of stages and reasons complete: a value added here
// without its line there fails.
func TestDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, r := range Reasons {
		if !strings.Contains(doc, "`"+string(r)+"`") {
			t.Errorf("reason %s is not in docs/api.md", r)
		}
	}
	for _, s := range Stages {
		if !strings.Contains(doc, "| `"+string(s)+"` |") {
			t.Errorf("stage %s is not in docs/api.md's table", s)
		}
	}
}
