package swarm

import (
	"context"

	"github.com/moby/moby/client"
)

// Docker is the part of the Engine API the package uses, on a Swarm manager. *client.Client
// satisfies it; tests inject faults by wrapping one.
type Docker interface {
	ServiceInspect(ctx context.Context, serviceID string, o client.ServiceInspectOptions) (client.ServiceInspectResult, error)
	ServiceUpdate(ctx context.Context, serviceID string, o client.ServiceUpdateOptions) (client.ServiceUpdateResult, error)
	TaskList(ctx context.Context, o client.TaskListOptions) (client.TaskListResult, error)
	NodeList(ctx context.Context, o client.NodeListOptions) (client.NodeListResult, error)
}

var _ Docker = (*client.Client)(nil)
