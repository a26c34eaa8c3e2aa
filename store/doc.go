// Package store keeps the watcher's state in one bbolt file: the lifecycle transaction journal,
// the history of runs and the last-known digest of each reference.
package store
