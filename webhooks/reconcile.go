package webhooks

import (
	"context"
	"time"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/dbgen"
)

// Reconcile defaults. MinAge leaves alone the uploads whose delivery may
// still be on its way (pg_net posts after commit, from a background
// worker, and the installed webhooks wait up to 5 s); MaxAge bounds the
// scan, and keeps the first run after installing the webhooks from
// turning every old object into a job.
const (
	DefaultReconcileMinAge = 2 * time.Minute
	DefaultReconcileMaxAge = 24 * time.Hour
	DefaultReconcileBatch  = 100
)

// reconcileKeyPrefix names the deliveries that Reconcile records in
// webhook_deliveries: "reconcile:<object id>".
const reconcileKeyPrefix = "reconcile:"

// ReconcileOptions configure Reconcile.
type ReconcileOptions struct {
	// Create makes the jobs; false only reports the objects (for a
	// deployment whose uploads do not become jobs by webhook).
	Create     bool
	MinAge     time.Duration // DefaultReconcileMinAge if zero
	MaxAge     time.Duration // DefaultReconcileMaxAge if zero
	MaxObjects int           // per run; DefaultReconcileBatch if zero
}

// ReconcileResult is what a Reconcile found and did.
type ReconcileResult struct {
	// Found: objects in sources, in the age window, that no delivery
	// turned into a job.
	Found int `json:"found"`
	// By action, when Create: job_created, job_exists (a delivery won
	// the race), rejected, ignored (folder placeholders).
	Actions map[Action]int `json:"actions,omitempty"`
	// Names of the objects found (up to MaxObjects).
	Names []string `json:"names,omitempty"`
}

// Reconcile finds uploads to the sources bucket whose webhook delivery
// never arrived (storage.objects rows without a clipper_internal.upload_jobs
// row, created between MaxAge and MinAge ago) and, with Create, handles
// each exactly as its delivery would have been handled: the body the
// sources webhook sends for that row goes through ParsePayload and the
// upload rules, in one transaction with a delivery record keyed
// "reconcile:<object id>". A delivery arriving later, or at the same time,
// finds the object's job (upload_jobs, under the per-object lock) and
// answers job_exists: never a second job.
func Reconcile(ctx context.Context, db database.DB, opts ReconcileOptions) (ReconcileResult, error) {
	if opts.MinAge <= 0 {
		opts.MinAge = DefaultReconcileMinAge
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultReconcileMaxAge
	}
	if opts.MaxObjects <= 0 {
		opts.MaxObjects = DefaultReconcileBatch
	}
	res := ReconcileResult{}
	rows, err := dbgen.New(db).UnreconciledUploads(ctx, dbgen.UnreconciledUploadsParams{
		MinAgeSeconds: opts.MinAge.Seconds(), MaxAgeSeconds: opts.MaxAge.Seconds(), MaxRows: int32(opts.MaxObjects)})
	if err != nil {
		return res, apperr.FromDB(err, "reconcile")
	}
	res.Found = len(rows)
	for _, row := range rows {
		res.Names = append(res.Names, row.Name)
	}
	if !opts.Create {
		return res, nil
	}
	res.Actions = map[Action]int{}
	h := &Handler{db: db}
	for _, row := range rows {
		p, err := ParsePayload(row.Payload)
		if err != nil {
			// A row the webhook could not deliver either (e.g. a name
			// that is not valid UTF-8): leave it to the report.
			res.Actions[ActionRejected]++
			continue
		}
		out, err := h.deliver(ctx, reconcileKeyPrefix+row.ObjectID.String(), p)
		if err != nil {
			return res, err
		}
		res.Actions[out.Action]++
	}
	return res, nil
}
