// Package store keeps the watcher's state in one bbolt file: the lifecycle transaction journal,
// the history of runs and the last known state (digests, outcome) of each watched container.
package store
