package api

import (
	"context"

	"github.com/watcher-dev/watcher/updater"
)

// Service is what the API needs from the daemon (the updater implements it).
type Service interface {
	// Trigger asks for a run. If a run is in progress, the request joins the one queued follow-up
	// run (at most one is queued) and gets that run's id. done is closed when that run has finished.
	// A request naming containers the daemon does not watch fails with *updater.NotWatchedError.
	Trigger(ctx context.Context, req updater.Request) (runID string, done <-chan struct{}, err error)
	// Run returns one run's report, or updater.ErrRunNotFound.
	Run(id string) (*updater.Report, error)
	// Runs returns up to limit reports, newest first.
	Runs(limit int) ([]updater.Report, error)
	// Containers returns the latest known state of each watched container, on the hosts named
	// (all when none is); an unknown host is an *updater.UnknownHostError.
	Containers(ctx context.Context, hosts ...string) ([]updater.ContainerStatus, error)
	// Ready reports whether the Docker engine (with hosts configured: any of them) is reachable.
	Ready(ctx context.Context) error
}

// HostsService is what the API uses of a daemon with hosts configured (the updater implements
// it); it is found on the Service by type assertion. Without it, or when Named is false, nothing
// the API says names a host and ?host= is an unknown parameter.
type HostsService interface {
	// Named reports whether hosts are configured.
	Named() bool
	// Hosts asks every host's engine whether it answers.
	Hosts(ctx context.Context) []updater.HostStatus
}
