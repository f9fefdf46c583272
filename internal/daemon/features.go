package daemon

import (
	"context"

	"github.com/labstack/echo/v4"

	"github.com/clipper/clipper/internal/apikeys"
	"github.com/clipper/clipper/internal/auth"
	"github.com/clipper/clipper/internal/jobsapi"
	"github.com/clipper/clipper/internal/keysapi"
	"github.com/clipper/clipper/internal/notify"
	"github.com/clipper/clipper/internal/retention"
	"github.com/clipper/clipper/internal/storage"
	"github.com/clipper/clipper/internal/watches"
	"github.com/clipper/clipper/webhooks"
)

// register wires every feature's routes and background work. Each feature
// has its own block.
func (f *features) register(ctx context.Context, e *echo.Echo) error {
	// --- auth and keys admin ---
	// The event streams below re-read keys too.
	keys, err := apikeys.NewRepo(f.db, apikeys.Options{Params: auth.HashParams(f.cfg)})
	if err != nil {
		return err
	}
	{
		opts := auth.ConfigOptions(f.cfg)
		opts.Keys, opts.Limiter = keys, f.rateLimiter()
		opts.Logger, opts.Metrics, opts.Connected = f.log, f.metrics, f.listener.Connected
		if f.auth, err = auth.New(opts); err != nil {
			return err
		}
		// Subscribed before any request is served, so no change is missed.
		changes := f.listener.Subscribe(notify.ChannelAPIKeys)
		f.background("api key cache invalidation", func(ctx context.Context) { f.auth.Follow(ctx, changes) })
		f.background("api key last use", f.auth.RunLastUsedFlusher)
		keysapi.Register(e, f.auth, keys)
	}

	// --- storage ---
	{
		signer, err := storage.FromConfig(f.cfg, f.log)
		if err != nil {
			return err
		}
		if local, ok := signer.(*storage.Local); ok {
			local.RegisterRoutes(e)
			f.log.Info("local storage backend", "dir", local.Dir(), "max_upload_bytes", local.MaxUploadBytes())
		}
		f.storage = signer
	}

	// --- group commit of the jobs API's single creates and appends ---
	creates, appends := f.groupCommit()

	// --- jobs API ---
	{
		// The database notifies only the events of jobs some daemon streams.
		watched := watches.New(f.db, watches.Options{Logger: f.log})
		f.background("job watches", watched.Run)
		hub := jobsapi.NewHubWith(f.listener, f.log, jobsapi.HubOptions{
			PerKey: f.cfg.StreamsPerKey, Total: f.cfg.StreamsMax, ReadTimeout: f.cfg.RequestTimeout,
			KeyCheck: keys.Get, Gauge: f.metrics.EventStreams, Watches: watched,
		})
		f.background("job event streams", hub.Run)
		if err := jobsapi.Register(e, jobsapi.Deps{
			DB: f.db, Auth: f.auth, Signer: f.storage, Hub: hub, Logger: f.log,
			JobRetention: f.cfg.JobRetention, URLPolicy: storage.PolicyFromConfig(f.cfg),
			// Event streams end when shutdown begins (ctx), not once the
			// server has drained (f.daemonCtx): the drain would wait for them.
			Shutdown: ctx,
			Creates:  creates, Appends: appends,
		}); err != nil {
			return err
		}
	}

	// --- webhooks ---
	if err := webhooks.Register(e, webhooks.Options{
		DB: f.db, Secret: f.cfg.WebhookSecret, SigningSecret: f.cfg.WebhookSigningSecret,
		Logger: f.log, Metrics: f.metrics,
	}); err != nil {
		return err
	}

	// --- retention ---
	sched := &retention.Scheduler{
		Pool: f.pool, Interval: f.cfg.CleanupInterval, BatchSize: f.cfg.CleanupBatchSize,
		HeartbeatTimeout: f.cfg.HeartbeatTimeout, Retention: f.cfg.JobRetention, Log: f.log,
		Storage:   f.storage,
		Reconcile: retention.ReconcileFromConfig(f.cfg),
		OnRound:   func(r retention.Round) { retention.RecordRound(f.metrics, r) },
	}
	f.background("retention", sched.Run)

	return nil
}
