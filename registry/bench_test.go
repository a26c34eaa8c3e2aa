package registry

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/watcher-dev/watcher/internal/testenv"
)

// BenchmarkCheck200Over40 is a cycle with nothing to update: 200 containers using 40 distinct
// references (one tag in each of 40 repositories, 5 containers each) on a token-authenticated
// registry. It must cost exactly 40 manifest HEADs and 0 GETs a cycle, and 0 token requests warm,
// 1 cold (one for the registry, carrying the 40 repositories' scopes) — checked with b.Fatalf,
// correctness conditions — and reports the wall time of the whole Check as ms/op.
//
//	warm: one Checker across cycles, as the daemon runs (tokens already held)
//	warm-defaults: the same with default Options (16 overall, 8 per host: one host here)
//	cold: a new Checker each cycle: 1 ping and 1 token request come on top
func BenchmarkCheck200Over40(b *testing.B) {
	reg := testenv.NewRegistry(b)
	var qs []Query
	for i := range 40 {
		repo := fmt.Sprintf("app%02d", i)
		// Distinct images, so every repository holds its own manifest.
		d := pushTags(b, reg, repo, testenv.ImageSpec{Version: fmt.Sprintf("v%d", i)}, "v1")
		for range 5 {
			qs = append(qs, pulled(reg, repo, "v1", d))
		}
	}
	reg.RequireToken("", "")

	run := func(b *testing.B, fresh bool, o Options) {
		c := newChecker(o)
		mustOK(b, c.Check(context.Background(), qs)) // warm up: ping and tokens
		var total time.Duration
		var heads, gets, tokens, other int
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			if fresh {
				c = newChecker(o)
			}
			reg.ResetRequests()
			b.StartTimer()
			start := time.Now()
			rs := c.Check(context.Background(), qs)
			total += time.Since(start)
			b.StopTimer()
			mustOK(b, rs)
			h, g, tk := manifestCalls(reg, "HEAD"), manifestCalls(reg, "GET"), reg.Count("GET", "/token")
			if h != 40 || g != 0 {
				b.Fatalf("one cycle made %d manifest HEADs and %d GETs, want 40 and 0", h, g)
			}
			if want := map[bool]int{false: 0, true: 1}[fresh]; tk != want {
				b.Fatalf("one cycle made %d token requests, want %d", tk, want)
			}
			for _, r := range rs {
				if r.UpdateAvailable {
					b.Fatalf("%s: update reported for an unchanged image", r.Ref)
				}
			}
			heads, gets, tokens = heads+h, gets+g, tokens+tk
			other += len(reg.Requests()) - h - g - tk
			b.StartTimer()
		}
		b.StopTimer()
		n := float64(b.N)
		b.ReportMetric(float64(heads)/n, "heads/op")
		b.ReportMetric(float64(gets)/n, "gets/op")
		b.ReportMetric(float64(tokens)/n, "tokens/op")
		b.ReportMetric(float64(other)/n, "pings/op")
		b.ReportMetric(float64(total.Microseconds())/1000/n, "ms/op")
	}
	b.Run("warm", func(b *testing.B) { run(b, false, Options{Concurrency: 16, PerHost: 16}) })
	b.Run("warm-defaults", func(b *testing.B) { run(b, false, Options{}) })
	b.Run("cold", func(b *testing.B) { run(b, true, Options{Concurrency: 16, PerHost: 16}) })
}
