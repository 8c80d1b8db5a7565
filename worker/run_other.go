//go:build !linux

package worker

import (
	"context"
	"errors"
	"fmt"
)

// Run runs the master or a worker; see the Linux documentation. On this
// system it returns an error wrapping errors.ErrUnsupported.
func Run(ctx context.Context, cfg *Config, fn Func) error {
	return fmt.Errorf("worker: master/worker supervision needs Linux: %w", errors.ErrUnsupported)
}
