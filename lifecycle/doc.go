// Package lifecycle replaces one container with one built from a newer image as a journaled
// transaction on the Docker Engine API, so that a failure or a crash at any instant ends with the
// container running on the old image or the new one, never gone.
package lifecycle
