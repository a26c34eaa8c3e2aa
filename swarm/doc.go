// Package swarm updates Docker Swarm services through a manager: one ServiceUpdate that changes
// only the image (to repo:tag@sha256:…), Swarm's own rolling update waited for within a timeout,
// and the update journaled so that a watcher that crashes while waiting resumes the wait instead
// of updating the service a second time.
package swarm
