package daemon

import (
	"context"

	"github.com/labstack/echo/v4"
)

// register wires every feature's routes and background work. Each feature
// has its own block.
func (f *features) register(ctx context.Context, e *echo.Echo) error {
	// --- auth and keys admin ---

	// --- storage ---

	// --- jobs API ---

	// --- webhooks ---

	// --- retention ---

	return nil
}
