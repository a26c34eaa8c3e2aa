// Package failure is the one vocabulary for where and why something went wrong: the stages and
// reasons that registry, lifecycle, updater, the API, metrics and notifications all report.
// docs/api.md lists them for users; add a value here and there together.
package failure

// Stage is where in a run something failed or was held.
type Stage string

// Stages, in the order a container's update meets them.
const (
	StageCheck    Stage = "check"    // asking the registry, reading labels and the local image
	StagePlan     Stage = "plan"     // held before anything is touched (window, hook, dependent, unsupported)
	StagePull     Stage = "pull"     // pulling the new image
	StageStop     Stage = "stop"     // stopping (and setting aside) the old container
	StageCreate   Stage = "create"   // creating (and naming) the new container
	StageStart    Stage = "start"    // starting the new container
	StageVerify   Stage = "verify"   // watching the new container run (and become healthy)
	StageRollback Stage = "rollback" // putting the old container back
	StageService  Stage = "service"  // a Swarm service update, driven by Swarm
	StageHost     Stage = "host"     // the engine of one host as a whole
)

// Reason is why: a short CamelCase word a user can search for and a program can match.
type Reason string

// Reasons of the check stage (the registry's answers and the container's own description).
const (
	ManifestUnknown     Reason = "ManifestUnknown"     // registry 404 / MANIFEST_UNKNOWN / NAME_UNKNOWN: tag gone
	Unauthorized        Reason = "Unauthorized"        // registry 401/403: credentials missing or wrong
	RateLimited         Reason = "RateLimited"         // registry 429: the host backs off until Retry-After
	RegistryUnavailable Reason = "RegistryUnavailable" // registry 5xx, timeouts, connection errors
	InvalidReference    Reason = "InvalidReference"    // unparseable, digest-pinned or locally built reference
	InvalidLabel        Reason = "InvalidLabel"        // a watcher.* label the container carries cannot be read
	ContainerNotFound   Reason = "ContainerNotFound"   // the container is gone (removed since it was listed)
	ImageInspectError   Reason = "ImageInspectError"   // the engine could not describe a container or image
)

// Reasons of an update's steps.
const (
	ErrImagePull               Reason = "ErrImagePull"               // pull: the pull failed
	KillContainerError         Reason = "KillContainerError"         // stop: the old container could not be stopped
	CreateContainerConfigError Reason = "CreateContainerConfigError" // create: the engine rejected the config (4xx)
	CreateContainerError       Reason = "CreateContainerError"       // create: any other failure, or the name is held
	RunContainerError          Reason = "RunContainerError"          // start: the container never ran
	ContainerExited            Reason = "ContainerExited"            // verify: it exited (exit code and meaning in the message)
	OOMKilled                  Reason = "OOMKilled"                  // verify: killed for memory
	Unhealthy                  Reason = "Unhealthy"                  // verify: unhealthy, or not healthy in time
	CrashLoop                  Reason = "CrashLoop"                  // verify: restarting
	RollbackFailed             Reason = "RollbackFailed"             // rollback: a human must look at this container
	Interrupted                Reason = "Interrupted"                // the watcher stopped (or crashed) mid-update; undone on recovery
	StoreError                 Reason = "StoreError"                 // the journal could not be written; nothing is done without it
)

// Reasons of the plan stage: the update is held before anything is touched.
const (
	DependentNotManaged Reason = "DependentNotManaged" // an opted-out container shares its namespace
	OutsideWindow       Reason = "OutsideWindow"       // outside every maintenance window
	HookSkipped         Reason = "HookSkipped"         // the pre-update hook exited 75
	HookFailed          Reason = "HookFailed"          // the pre-update hook failed or timed out
	Unsupported         Reason = "Unsupported"         // cannot be done safely as the container is configured
)

// Reasons of Swarm services and of hosts.
const (
	ServiceRolledBack    Reason = "ServiceRolledBack"    // Swarm rolled the service update back
	ServicePaused        Reason = "ServicePaused"        // Swarm paused the service update
	ServiceUpdateTimeout Reason = "ServiceUpdateTimeout" // the service did not converge in time
	ServiceUpdateRefused Reason = "ServiceUpdateRefused" // the manager refused the ServiceUpdate: nothing changed
	ServiceChanged       Reason = "ServiceChanged"       // the service's image was changed outside the watcher meanwhile
	EngineUnreachable    Reason = "EngineUnreachable"    // the host's engine could not be reached
)

// Reasons lists every reason, for documentation tests and validation.
var Reasons = []Reason{
	ManifestUnknown, Unauthorized, RateLimited, RegistryUnavailable, InvalidReference, InvalidLabel,
	ContainerNotFound, ImageInspectError,
	ErrImagePull, KillContainerError, CreateContainerConfigError, CreateContainerError, RunContainerError,
	ContainerExited, OOMKilled, Unhealthy, CrashLoop, RollbackFailed, Interrupted, StoreError,
	DependentNotManaged, OutsideWindow, HookSkipped, HookFailed, Unsupported,
	ServiceRolledBack, ServicePaused, ServiceUpdateTimeout, ServiceUpdateRefused, ServiceChanged, EngineUnreachable,
}

// Stages lists every stage.
var Stages = []Stage{StageCheck, StagePlan, StagePull, StageStop, StageCreate, StageStart, StageVerify,
	StageRollback, StageService, StageHost}
