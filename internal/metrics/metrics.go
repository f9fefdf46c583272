// Package metrics holds the daemon's Prometheus collectors on a registry
// of its own, served at /metrics.
package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the collectors the daemon's parts record into.
type Metrics struct {
	Registry *prometheus.Registry

	HTTPDuration       *prometheus.HistogramVec // route, method, status
	WebhookDeliveries  *prometheus.CounterVec   // result: accepted, duplicate, unauthorized, invalid, error
	KeyCacheLookups    *prometheus.CounterVec   // result: hit, miss, negative_hit, throttled, busy
	NotifyConnected    prometheus.Gauge
	NotifyReconnects   prometheus.Counter
	EventStreams       prometheus.Gauge
	CleanupDeletedJobs prometheus.Counter
	ReapedJobs         prometheus.Counter

	// Objects of deleted jobs (the outbox drain), webhook records pruned,
	// and uploads reconciled without their webhook.
	CleanupDeletedObjects    *prometheus.CounterVec // bucket
	CleanupObjectFailures    prometheus.Counter
	CleanupPendingObjects    prometheus.Gauge
	CleanupPrunedWebhookRows *prometheus.CounterVec // table: webhook_deliveries, upload_jobs
	ReconciledUploads        *prometheus.CounterVec // action: found, job_created, job_exists, rejected, ignored
}

// New registers every collector on a fresh registry, plus Go runtime and
// process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "clipper_http_request_duration_seconds",
			Help:    "HTTP request latency by route, method and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method", "status"}),
		WebhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clipper_webhook_deliveries_total",
			Help: "Webhook deliveries by result.",
		}, []string{"result"}),
		KeyCacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clipper_api_key_cache_lookups_total",
			Help: "API key verifications by cache result.",
		}, []string{"result"}),
		NotifyConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "clipper_notify_connected",
			Help: "1 while the LISTEN connection is up.",
		}),
		NotifyReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clipper_notify_reconnects_total",
			Help: "LISTEN connection re-establishments.",
		}),
		EventStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "clipper_event_streams",
			Help: "Job event streams (SSE) open on this daemon.",
		}),
		CleanupDeletedJobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clipper_cleanup_deleted_jobs_total",
			Help: "Expired jobs deleted by cleanup.",
		}),
		ReapedJobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clipper_reaped_jobs_total",
			Help: "Processing jobs with a stale heartbeat that were requeued or failed.",
		}),
		CleanupDeletedObjects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clipper_cleanup_deleted_objects_total",
			Help: "Storage objects of deleted jobs that cleanup deleted, by bucket.",
		}, []string{"bucket"}),
		CleanupObjectFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clipper_cleanup_object_delete_failures_total",
			Help: "Object deletes that failed and were queued again with a backoff.",
		}),
		CleanupPendingObjects: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "clipper_cleanup_pending_objects",
			Help: "Objects of deleted jobs still waiting to be deleted, after the last drain.",
		}),
		CleanupPrunedWebhookRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clipper_cleanup_pruned_webhook_records_total",
			Help: "Webhook records deleted by retention, by table.",
		}, []string{"table"}),
		ReconciledUploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clipper_reconciled_uploads_total",
			Help: "Uploads found without a webhook delivery (found), and what reconciling them did.",
		}, []string{"action"}),
	}
	r.MustRegister(m.HTTPDuration, m.WebhookDeliveries, m.KeyCacheLookups, m.NotifyConnected,
		m.NotifyReconnects, m.EventStreams, m.CleanupDeletedJobs, m.ReapedJobs,
		m.CleanupDeletedObjects, m.CleanupObjectFailures, m.CleanupPendingObjects,
		m.CleanupPrunedWebhookRows, m.ReconciledUploads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// AddObjects records one outbox drain. The arguments are plain counts so
// that this package imports no other of the project's.
func (m *Metrics) AddObjects(deleted map[string]int64, failed, pending int64) {
	for bucket, n := range deleted {
		m.CleanupDeletedObjects.WithLabelValues(bucket).Add(float64(n))
	}
	m.CleanupObjectFailures.Add(float64(failed))
	m.CleanupPendingObjects.Set(float64(pending))
}

// RegisterPool exports the pool's statistics.
func (m *Metrics) RegisterPool(pool *pgxpool.Pool) {
	m.Registry.MustRegister(poolCollector{pool: pool})
}

type poolCollector struct{ pool *pgxpool.Pool }

var (
	poolTotal    = prometheus.NewDesc("clipper_db_pool_connections", "Pool connections by state.", []string{"state"}, nil)
	poolMax      = prometheus.NewDesc("clipper_db_pool_max_connections", "Pool size limit.", nil, nil)
	poolAcquires = prometheus.NewDesc("clipper_db_pool_acquires_total", "Connections acquired from the pool.", nil, nil)
	poolWait     = prometheus.NewDesc("clipper_db_pool_acquire_wait_seconds_total", "Time spent waiting for a connection.", nil, nil)
	poolEmpty    = prometheus.NewDesc("clipper_db_pool_empty_acquires_total", "Acquires that had to wait for a connection.", nil, nil)
)

func (p poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolTotal
	ch <- poolMax
	ch <- poolAcquires
	ch <- poolWait
	ch <- poolEmpty
}

func (p poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.pool.Stat()
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(s.AcquiredConns()), "acquired")
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(s.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(poolTotal, prometheus.GaugeValue, float64(s.ConstructingConns()), "constructing")
	ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolAcquires, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolWait, prometheus.CounterValue, s.AcquireDuration().Seconds())
	ch <- prometheus.MustNewConstMetric(poolEmpty, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
}
