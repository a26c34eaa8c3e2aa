// Package api serves the daemon over HTTP: run triggers, container status, run history, health
// and Prometheus metrics, each behind the token rules that docs/api.md describes.
package api
