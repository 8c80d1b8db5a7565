package worker

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The master tells a worker who it is through these environment variables.
// envIndex alone marks a process as a worker.
const (
	envIndex       = "PROCWIRE_WORKER"
	envGeneration  = "PROCWIRE_WORKER_GENERATION"
	envGroup       = "PROCWIRE_WORKER_GROUP"
	envMaster      = "PROCWIRE_WORKER_MASTER"
	envListeners   = "PROCWIRE_WORKER_LISTENERS"
	envStopTimeout = "PROCWIRE_WORKER_STOP_TIMEOUT"
)

// envNames returns every variable of the worker environment.
func envNames() []string {
	return []string{envIndex, envGeneration, envGroup, envMaster, envListeners, envStopTimeout}
}

// maxListeners bounds the listener count a worker accepts from its
// environment, so that a corrupt value cannot make it walk the fd table.
const maxListeners = 1024

// identity is what a worker learns from its environment.
type identity struct {
	Index       int
	Generation  int
	Group       string
	Master      int // pid of the master
	Listeners   int // inherited listeners, at fds firstListenerFD...
	StopTimeout time.Duration
}

// environ returns id as environment entries, replacing any variables of
// the same names in base (a worker's own workers must not inherit them).
func (id identity) environ(base []string) []string {
	env := make([]string, 0, len(base)+6)
	names := envNames()
	for _, kv := range base {
		if name, _, _ := strings.Cut(kv, "="); !slices.Contains(names, name) {
			env = append(env, kv)
		}
	}
	return append(env,
		envIndex+"="+strconv.Itoa(id.Index),
		envGeneration+"="+strconv.Itoa(id.Generation),
		envGroup+"="+id.Group,
		envMaster+"="+strconv.Itoa(id.Master),
		envListeners+"="+strconv.Itoa(id.Listeners),
		envStopTimeout+"="+id.StopTimeout.String(),
	)
}

// parseIdentity reads a worker's identity with lookup (os.LookupEnv) and
// says which variable is missing or malformed.
func parseIdentity(lookup func(string) (string, bool)) (identity, error) {
	var id identity
	var err error
	num := func(name string, lo, hi int) int {
		if err != nil {
			return 0
		}
		v, ok := lookup(name)
		if !ok {
			err = fmt.Errorf("worker: %s is not set; was this process started by worker.Run?", name)
			return 0
		}
		n, perr := strconv.Atoi(v)
		if perr != nil || n < lo || n > hi {
			err = fmt.Errorf("worker: %s=%q is not a number in [%d, %d]", name, v, lo, hi)
			return 0
		}
		return n
	}
	id.Index = num(envIndex, 0, 1<<30)
	id.Generation = num(envGeneration, 0, 1<<30)
	id.Master = num(envMaster, 1, 1<<30)
	id.Listeners = num(envListeners, 0, maxListeners)
	if err != nil {
		return identity{}, err
	}
	group, ok := lookup(envGroup)
	if !ok || group == "" {
		return identity{}, fmt.Errorf("worker: %s is not set or empty", envGroup)
	}
	id.Group = group
	v, ok := lookup(envStopTimeout)
	if !ok {
		return identity{}, fmt.Errorf("worker: %s is not set", envStopTimeout)
	}
	d, perr := time.ParseDuration(v)
	if perr != nil || d <= 0 {
		return identity{}, fmt.Errorf("worker: %s=%q is not a positive duration", envStopTimeout, v)
	}
	id.StopTimeout = d
	return id, nil
}
