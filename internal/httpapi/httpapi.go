// Package httpapi is the daemon's HTTP core: the echo instance with its
// middleware (request ids, access log, panic recovery, body limits,
// metrics), the one error handler that renders {ok:false,code,message},
// the success shape, health and readiness, and the server's lifecycle.
// Feature packages register their routes on the echo it returns.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sort"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/metrics"
)

// Options configure the HTTP core.
type Options struct {
	Logger    *slog.Logger
	Metrics   *metrics.Metrics
	BodyLimit string // default "1M"; echo size syntax
	// Ready names the checks /readyz runs; each returns nil when healthy.
	Ready map[string]func(ctx context.Context) error
	// RequestTimeout is the deadline of every request's context (default
	// 10 s): a database call still running when it passes is canceled and
	// the request answers 503 unavailable. Long streams lift it with
	// WithoutDeadline and bound each of their own calls instead.
	RequestTimeout time.Duration
	// TrustedProxies are CIDRs of reverse proxies whose X-Forwarded-For
	// names the client (c.RealIP()). Without them the TCP peer is the
	// client and forwarding headers are ignored: a client could otherwise
	// pick its own address and escape per-client limits.
	TrustedProxies []string
}

// Success is the shape of every successful JSON response.
type Success struct {
	OK   bool `json:"ok"`
	Data any  `json:"data"`
}

// New returns an echo instance with the core middleware, the error
// handler, /healthz, /readyz and /metrics.
func New(opts Options) *echo.Echo {
	if opts.BodyLimit == "" {
		opts.BodyLimit = "1M"
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(opts.Logger)
	e.IPExtractor = ipExtractor(opts.TrustedProxies)
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{Generator: newRequestID}))
	e.Use(accessLog(opts.Logger, opts.Metrics))
	e.Use(recoverPanics(opts.Logger))
	e.Use(middleware.BodyLimit(opts.BodyLimit))
	e.Use(requestDeadline(opts.RequestTimeout))

	e.GET("/healthz", func(c echo.Context) error {
		return OK(c, http.StatusOK, map[string]string{"status": "up"})
	})
	e.GET("/readyz", readyHandler(opts.Ready))
	if opts.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(opts.Metrics.Registry, promhttp.HandlerOpts{})))
	}
	return e
}

// OK writes {"ok": true, "data": data} with status.
func OK(c echo.Context, status int, data any) error {
	return c.JSON(status, Success{OK: true, Data: data})
}

// Fail writes the envelope for err with its HTTP status. Handlers return
// errors instead; Fail is for code that must answer itself (streams).
func Fail(c echo.Context, err error) error {
	env := apperr.EnvelopeOf(err)
	return c.JSON(apperr.HTTPStatus(env.Code), env)
}

// ipExtractor trusts X-Forwarded-For only from the given proxies.
func ipExtractor(proxies []string) echo.IPExtractor {
	if len(proxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{
		echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false),
	}
	for _, cidr := range proxies {
		if _, n, err := net.ParseCIDR(cidr); err == nil {
			opts = append(opts, echo.TrustIPRange(n))
		}
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

type undeadlinedKey struct{}

// requestDeadline puts the request timeout on the request's context and
// keeps the context it replaced for WithoutDeadline.
func requestDeadline(timeout time.Duration) echo.MiddlewareFunc {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			parent := c.Request().Context()
			ctx, cancel := context.WithTimeout(context.WithValue(parent, undeadlinedKey{}, parent), timeout)
			defer cancel()
			c.SetRequest(c.Request().WithContext(ctx))
			return next(c)
		}
	}
}

// WithoutDeadline returns the request's context without the request
// timeout (still canceled when the client goes away), for a response that
// legitimately outlives it: an event stream. Whoever uses it must put a
// deadline on each database call it makes.
// Values set on ctx after the deadline (the authenticated key) are kept.
func WithoutDeadline(ctx context.Context) context.Context {
	if parent, ok := ctx.Value(undeadlinedKey{}).(context.Context); ok {
		return undeadlined{Context: parent, values: ctx}
	}
	return ctx
}

// undeadlined is canceled like its parent and carries the values of the
// deadlined context derived from it.
type undeadlined struct {
	context.Context
	values context.Context
}

func (u undeadlined) Value(key any) any { return u.values.Value(key) }

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RequestID returns the request's id (also sent as X-Request-Id).
func RequestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

// Logger returns the logger for this request, carrying its request id.
func Logger(c echo.Context, base *slog.Logger) *slog.Logger {
	return base.With("request_id", RequestID(c))
}

// errorHandler renders every error as the envelope. 5xx are logged at
// error level with their cause; nothing else is logged here.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		err = fromEcho(err)
		env := apperr.EnvelopeOf(err)
		status := apperr.HTTPStatus(env.Code)
		if status >= 500 && log != nil {
			log.Error("request failed", "request_id", RequestID(c), "method", c.Request().Method,
				"route", c.Path(), "code", env.Code, "error", err)
		}
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			if c.Response().Header().Get("Retry-After") == "" {
				c.Response().Header().Set("Retry-After", "1")
			}
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		_ = c.JSON(status, env)
	}
}

// fromEcho maps echo's own errors (unknown route, wrong method, body too
// large, bad binding) onto codes.
func fromEcho(err error) error {
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		return err
	}
	msg := http.StatusText(he.Code)
	if s, ok := he.Message.(string); ok && he.Code < 500 {
		msg = s
	}
	switch he.Code {
	case http.StatusNotFound:
		return apperr.New(apperr.NotFound, "no such route")
	case http.StatusMethodNotAllowed:
		return apperr.New(apperr.InvalidInput, "method not allowed on this route")
	case http.StatusRequestEntityTooLarge:
		return apperr.New(apperr.PayloadTooLarge, "request body too large")
	case http.StatusUnauthorized:
		return apperr.New(apperr.Unauthorized, "%s", msg)
	case http.StatusForbidden:
		return apperr.New(apperr.Forbidden, "%s", msg)
	case http.StatusTooManyRequests:
		return apperr.New(apperr.RateLimited, "%s", msg)
	case http.StatusServiceUnavailable:
		return apperr.New(apperr.Unavailable, "%s", msg)
	}
	if he.Code >= 400 && he.Code < 500 {
		return apperr.New(apperr.InvalidInput, "%s", msg)
	}
	return apperr.Wrap(err, apperr.Internal, "internal error")
}

// accessLog logs one line per request and records its latency. It logs
// the route pattern, never the query string or headers (they can hold
// keys and signed-URL tokens).
func accessLog(log *slog.Logger, m *metrics.Metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			status := c.Response().Status
			elapsed := time.Since(start)
			if m != nil && route != "/metrics" {
				m.HTTPDuration.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Observe(elapsed.Seconds())
			}
			if log != nil {
				level := slog.LevelInfo
				if route == "/healthz" || route == "/readyz" || route == "/metrics" {
					level = slog.LevelDebug
				}
				log.Log(c.Request().Context(), level, "request", "request_id", RequestID(c),
					"method", c.Request().Method, "route", route, "status", status,
					"duration_ms", float64(elapsed.Microseconds())/1000, "bytes", c.Response().Size)
			}
			return nil
		}
	}
}

// recoverPanics turns a panic into an internal error response.
func recoverPanics(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					if r == http.ErrAbortHandler {
						panic(r)
					}
					if log != nil {
						log.Error("panic in handler", "request_id", RequestID(c), "route", c.Path(),
							"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					}
					err = apperr.New(apperr.Internal, "internal error")
				}
			}()
			return next(c)
		}
	}
}

func readyHandler(checks map[string]func(ctx context.Context) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		result := map[string]string{}
		var failed []string
		for name, check := range checks {
			if err := check(ctx); err != nil {
				result[name] = apperr.EnvelopeOf(err).Message
				failed = append(failed, name)
			} else {
				result[name] = "ok"
			}
		}
		if len(failed) > 0 {
			sort.Strings(failed)
			return c.JSON(http.StatusServiceUnavailable, map[string]any{
				"ok": false, "code": apperr.Unavailable,
				"message": fmt.Sprintf("not ready: %v", failed), "checks": result,
			})
		}
		return OK(c, http.StatusOK, result)
	}
}
