package webhooks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/httpapi"
	"github.com/clipper/clipper/internal/metrics"
)

// Route is where Supabase delivers database webhooks.
const Route = "/webhooks/supabase"

// DefaultTimeout bounds the work on one delivery; it is below the 5 s the
// installed webhooks wait, so the sender always gets an answer.
const DefaultTimeout = 4 * time.Second

const maxWebhookIDLen = 255

// Options configure the receiver.
type Options struct {
	DB database.DB // the pool

	// Secret is CLIPPER_WEBHOOK_SECRET, expected as "Authorization: Bearer
	// <secret>". Empty disables the route: it answers 503 unavailable.
	Secret string
	// SigningSecret is CLIPPER_WEBHOOK_SIGNING_SECRET (whsec_...). When set,
	// a delivery also needs a valid Standard Webhooks signature.
	SigningSecret string

	Logger  *slog.Logger
	Metrics *metrics.Metrics // optional
	Timeout time.Duration    // default DefaultTimeout
	Now     func() time.Time // default time.Now
}

// Handler serves Route.
type Handler struct {
	db       database.DB
	enabled  bool
	bearer   bearer
	verifier *Verifier // nil: bearer only
	log      *slog.Logger
	metrics  *metrics.Metrics
	timeout  time.Duration
	now      func() time.Time
}

// NewHandler checks opts; a malformed signing secret is an error, so the
// daemon refuses to start rather than run unprotected.
func NewHandler(opts Options) (*Handler, error) {
	h := &Handler{
		db:      opts.DB,
		enabled: opts.Secret != "",
		bearer:  newBearer(opts.Secret),
		log:     opts.Logger,
		metrics: opts.Metrics,
		timeout: opts.Timeout,
		now:     opts.Now,
	}
	if opts.SigningSecret != "" {
		v, err := NewVerifier(opts.SigningSecret)
		if err != nil {
			return nil, apperr.New(apperr.InvalidInput, "CLIPPER_WEBHOOK_SIGNING_SECRET: %s", apperr.EnvelopeOf(err).Message)
		}
		h.verifier = v
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.timeout == 0 {
		h.timeout = DefaultTimeout
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// Register adds Route to e.
func Register(e *echo.Echo, opts Options) error {
	h, err := NewHandler(opts)
	if err != nil {
		return err
	}
	switch {
	case !h.enabled:
		h.log.Warn("database webhooks disabled: CLIPPER_WEBHOOK_SECRET is not set", "route", Route)
	case h.verifier == nil:
		h.log.Info("database webhooks enabled", "route", Route, "auth", "bearer")
	default:
		h.log.Info("database webhooks enabled", "route", Route, "auth", "bearer+signature")
	}
	e.POST(Route, h.Serve)
	return nil
}

// Serve authenticates, reads and records one delivery, in that order:
// nothing is read from an unauthenticated request beyond its headers, and
// nothing is recorded unless it is authentic and well formed.
func (h *Handler) Serve(c echo.Context) error {
	if !h.enabled {
		h.count("unauthorized")
		return apperr.New(apperr.Unavailable, "webhooks are disabled on this server: CLIPPER_WEBHOOK_SECRET is not set")
	}
	req := c.Request()
	if !h.bearer.check(req.Header.Get(echo.HeaderAuthorization)) {
		return h.refuse(c, unauthorized("missing or wrong bearer secret in Authorization"))
	}
	body, err := readBody(c)
	if err != nil {
		h.count("invalid")
		return err
	}
	if h.verifier != nil {
		err := h.verifier.Verify(req.Header.Get(HeaderID), req.Header.Get(HeaderTimestamp),
			req.Header.Get(HeaderSignature), body, h.now())
		if err != nil {
			return h.refuse(c, err)
		}
	}
	p, err := ParsePayload(body)
	if err != nil {
		h.count("invalid")
		return err
	}
	key, err := deliveryKey(req.Header.Get(HeaderID), p)
	if err != nil {
		h.count("invalid")
		return err
	}

	ctx, cancel := context.WithTimeout(req.Context(), h.timeout)
	defer cancel()
	res, err := h.deliver(ctx, key, p)
	if err != nil {
		switch apperr.CodeOf(err) {
		case apperr.InvalidInput:
			h.count("invalid")
		default:
			h.count("error")
		}
		return err
	}
	h.logResult(c, p, res)
	if res.Duplicate {
		h.count("duplicate")
	} else {
		h.count("accepted")
	}
	return httpapi.OK(c, http.StatusOK, res)
}

// refuse answers 401. The log line says which check failed, never what
// was presented.
func (h *Handler) refuse(c echo.Context, err error) error {
	h.count("unauthorized")
	h.log.Warn("webhook delivery refused", "request_id", httpapi.RequestID(c),
		"reason", apperr.EnvelopeOf(err).Message)
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="clipper-webhooks"`)
	return err
}

func (h *Handler) count(result string) {
	if h.metrics != nil {
		h.metrics.WebhookDeliveries.WithLabelValues(result).Inc()
	}
}

func (h *Handler) logResult(c echo.Context, p Payload, res Result) {
	level := slog.LevelDebug
	switch {
	case res.Duplicate:
	case res.Action == ActionJobCreated:
		level = slog.LevelInfo
	case res.Action == ActionRejected:
		level = slog.LevelWarn
	}
	attrs := []any{"request_id", httpapi.RequestID(c), "delivery", res.Delivery, "type", p.Type,
		"schema", p.Schema, "table", p.Table, "action", res.Action, "duplicate", res.Duplicate}
	if res.JobID != nil {
		attrs = append(attrs, "job_id", res.JobID.String())
	}
	if res.Reason != "" {
		attrs = append(attrs, "reason", res.Reason)
	}
	h.log.Log(c.Request().Context(), level, "webhook delivery", attrs...)
}

// readBody reads at most MaxBodyBytes, refusing larger bodies whether or
// not they declare their length.
func readBody(c echo.Context) ([]byte, error) {
	req := c.Request()
	if req.ContentLength > MaxBodyBytes {
		return nil, tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, MaxBodyBytes))
	if err != nil {
		var maxErr *http.MaxBytesError
		var he *echo.HTTPError
		if errors.As(err, &maxErr) || errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge {
			return nil, tooLarge()
		}
		return nil, apperr.New(apperr.InvalidInput, "webhook body could not be read")
	}
	return body, nil
}

func tooLarge() error {
	return apperr.New(apperr.PayloadTooLarge, "webhook body is larger than %d KiB", MaxBodyBytes>>10)
}

// deliveryKey names a delivery so that its replays share the name: the
// sender's webhook-id, else the hash of the canonical payload (database
// webhooks carry no id; the row they describe, timestamps included, makes
// one change's payload unique).
func deliveryKey(webhookID string, p Payload) (string, error) {
	if webhookID == "" {
		return "sha256:" + p.Hash(), nil
	}
	if len(webhookID) > maxWebhookIDLen || !utf8.ValidString(webhookID) ||
		strings.ContainsFunc(webhookID, unicode.IsControl) {
		return "", apperr.New(apperr.InvalidInput, "%s must be 1 to %d printable bytes", HeaderID, maxWebhookIDLen)
	}
	return "id:" + webhookID, nil
}

// Result is the answer to an accepted delivery.
type Result struct {
	Delivery  string     `json:"delivery"`
	Duplicate bool       `json:"duplicate"`
	Action    Action     `json:"action"`
	JobID     *uuid.UUID `json:"job_id,omitempty"`
	// Reason says why an upload was rejected.
	Reason string `json:"reason,omitempty"`
}
