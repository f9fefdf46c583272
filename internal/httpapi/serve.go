package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Timeouts bound slow clients. Streams (SSE) lift the write deadline for
// their own response with http.ResponseController.
type Timeouts struct {
	ReadHeader time.Duration // default 5s
	Read       time.Duration // default 30s
	Write      time.Duration // default 30s
	Idle       time.Duration // default 120s
	Shutdown   time.Duration // default 20s: in-flight requests get this long to finish
}

func (t *Timeouts) defaults() {
	if t.ReadHeader == 0 {
		t.ReadHeader = 5 * time.Second
	}
	if t.Read == 0 {
		t.Read = 30 * time.Second
	}
	if t.Write == 0 {
		t.Write = 30 * time.Second
	}
	if t.Idle == 0 {
		t.Idle = 120 * time.Second
	}
	if t.Shutdown == 0 {
		t.Shutdown = 20 * time.Second
	}
}

// Serve runs e on l until ctx is done, then stops accepting connections
// and lets in-flight requests finish (up to Timeouts.Shutdown). Request
// contexts outlive ctx so that finishing requests are not canceled; long
// streams must watch the daemon's own context to end on shutdown.
func Serve(ctx context.Context, e *echo.Echo, l net.Listener, t Timeouts, log *slog.Logger) error {
	t.defaults()
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down HTTP server", "grace", t.Shutdown)
	shutCtx, cancel := context.WithTimeout(context.Background(), t.Shutdown)
	defer cancel()
	err := srv.Shutdown(shutCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		_ = srv.Close()
	}
	if serveErr := <-errc; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}
