// Package e2e holds the end-to-end test of the watcher as users run it: the repository's real
// Dockerfile built by `docker build` (the Docker CLI on PATH) in the repository root, the image
// run with `docker run` as a sidecar with the engine's socket mounted, a read-only root
// filesystem, no new privileges and no capabilities, updating a labelled container (and itself)
// when triggered over HTTP.
//
// It needs nothing from the internet: the build stage's base image is made from this machine's
// own Go toolchain (GOROOT), the modules come from this machine's module cache through a module
// proxy on 127.0.0.1, and every image the test pushes goes to an in-process registry on
// 127.0.0.1 (internal/testenv). Like every integration test it runs against the private engine
// of scripts/test-engine.sh; under CI a missing engine is a failure.
package e2e
