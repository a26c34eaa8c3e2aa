// Package defaults holds the update settings' default values in one place: config documents and
// applies them, and lifecycle and updater fall back to them when given a zero value, so the three
// never disagree.
package defaults

import "time"

const (
	// StopTimeout is how long a container without its own StopTimeout gets to stop (update.stop_timeout).
	StopTimeout = 10 * time.Second
	// Verify is how long a new container must run before it is kept (update.verify).
	Verify = 10 * time.Second
	// HealthTimeout is the longest wait for a new container with a healthcheck to be healthy
	// (update.health_timeout).
	HealthTimeout = 2 * time.Minute
	// Parallel is how many independent containers are in the disruptive part of their update at
	// once (update.parallel).
	Parallel = 4
)
