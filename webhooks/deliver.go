package webhooks

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/clipper/clipper/internal/apperr"
	"github.com/clipper/clipper/internal/database"
	"github.com/clipper/clipper/internal/dbgen"
	"github.com/clipper/clipper/internal/jobs"
)

// Action is what a delivery did; webhook_deliveries.action keeps it.
type Action string

// The actions.
const (
	// ActionJobCreated: an upload to the sources bucket became a queued job.
	ActionJobCreated Action = "job_created"
	// ActionJobExists: the upload's job was made by an earlier delivery.
	ActionJobExists Action = "job_exists"
	// ActionRejected: the upload cannot be a job (Result.Reason says why);
	// the delivery is recorded and acknowledged, since sending it again
	// would not help.
	ActionRejected Action = "rejected"
	// ActionRecorded: a change to public.jobs. Its effect, and the event
	// that traces it, were already written by the jobs triggers in the
	// transaction that made the change; the receiver only records the
	// delivery.
	ActionRecorded Action = "recorded"
	// ActionIgnored: a table, bucket or operation the receiver has no use
	// for; recorded all the same.
	ActionIgnored Action = "ignored"
)

// storageKeyPrefix starts the idempotency key of a job made from an
// upload: "storage:<object id>".
const storageKeyPrefix = "storage:"

// deliver records the delivery and applies its effect in one transaction:
// the sender is acknowledged only after both commit, and a replay (same
// key) finds the first delivery's row and changes nothing.
func (h *Handler) deliver(ctx context.Context, key string, p Payload) (Result, error) {
	res := Result{Delivery: key}
	err := database.InTx(ctx, h.db, func(tx pgx.Tx) error {
		q := dbgen.New(tx)
		var recordID *string
		if p.RecordID != "" {
			recordID = &p.RecordID
		}
		id, err := q.InsertWebhookDelivery(ctx, dbgen.InsertWebhookDeliveryParams{
			DeliveryKey: key,
			Type:        string(p.Type),
			SchemaName:  p.Schema,
			TableName:   p.Table,
			RecordID:    recordID,
			Payload:     p.Canonical(),
		})
		if database.IsNoRows(err) {
			prev, err := q.GetWebhookDeliveryByKey(ctx, key)
			if err != nil {
				return apperr.FromDB(err, "webhook delivery")
			}
			res.Duplicate = true
			res.Action = Action(prev.Action)
			res.JobID = jobPtr(prev.JobID)
			return nil
		}
		if err != nil {
			return apperr.FromDB(err, "webhook delivery")
		}

		action, jobID, reason, err := h.apply(ctx, tx, p)
		if err != nil {
			return err
		}
		res.Action, res.JobID, res.Reason = action, jobPtr(jobID), reason
		if action == ActionRecorded && !jobID.Valid {
			return nil // the column default
		}
		return apperr.FromDB(q.SetWebhookDeliveryAction(ctx, dbgen.SetWebhookDeliveryActionParams{
			ID: id, Action: string(action), JobID: jobID,
		}), "webhook delivery")
	})
	return res, err
}

// apply carries out what a delivery asks for, inside the delivery's
// transaction.
func (h *Handler) apply(ctx context.Context, tx pgx.Tx, p Payload) (Action, uuid.NullUUID, string, error) {
	switch {
	case p.Object != nil:
		return h.applyUpload(ctx, tx, *p.Object)
	case p.Schema == "public" && p.Table == "jobs":
		// Job changes made outside the daemon (PostgREST, SQL) already
		// wrote their events through the jobs triggers, in their own
		// transaction: recording the delivery is all that is left.
		return ActionRecorded, uuid.NullUUID{}, "", nil
	default:
		return ActionIgnored, uuid.NullUUID{}, "", nil
	}
}

// applyUpload makes one queued job per object uploaded to the sources
// bucket, however many deliveries report the upload.
func (h *Handler) applyUpload(ctx context.Context, tx pgx.Tx, o StorageObject) (Action, uuid.NullUUID, string, error) {
	none := uuid.NullUUID{}
	if o.BucketID != SourcesBucket || o.Placeholder() {
		return ActionIgnored, none, "", nil
	}
	if !o.Owner.Valid && jobs.InOwnedFolder(o.Name) {
		// An upload with no owner into a user's or an API key's folder came
		// through a URL the daemon signed (POST /v1/uploads): the client
		// that asked for it creates its job itself, with its own key.
		return ActionIgnored, none, "", nil
	}
	q := dbgen.New(tx)
	// Concurrent deliveries about one object (under different delivery
	// keys) take turns here; the second then finds the first's job.
	if err := q.LockWebhookSubject(ctx, "storage.objects:"+o.ID.String()); err != nil {
		return "", none, "", apperr.FromDB(err, "webhook delivery")
	}
	prev, err := q.GetUploadJob(ctx, o.ID)
	if err == nil {
		return ActionJobExists, uuid.NullUUID{UUID: prev, Valid: true}, "", nil
	}
	if !database.IsNoRows(err) {
		return "", none, "", apperr.FromDB(err, "webhook delivery")
	}

	params := jobs.CreateParams{SourceObject: o.Name, Params: o.Clip}
	if o.Owner.Valid {
		found, err := q.AuthUserExists(ctx, o.Owner.UUID)
		if err != nil {
			return "", none, "", apperr.FromDB(err, "webhook delivery")
		}
		if found {
			params.OwnerID = o.Owner
			// Also makes the job findable by the object within its
			// owner's jobs.
			params.IdempotencyKey = storageKeyPrefix + o.ID.String()
		}
	}
	var job jobs.Job
	var created bool
	// A savepoint: a job the database refuses leaves the delivery to be
	// recorded as rejected.
	err = database.InTx(ctx, tx, func(sp pgx.Tx) error {
		var err error
		job, created, err = jobs.New(sp).Create(ctx, params)
		return err
	})
	if apperr.Is(err, apperr.InvalidInput) {
		return ActionRejected, none, apperr.EnvelopeOf(err).Message, nil
	}
	if err != nil {
		return "", none, "", err
	}
	if err := q.InsertUploadJob(ctx, dbgen.InsertUploadJobParams{ObjectID: o.ID, JobID: job.ID}); err != nil {
		return "", none, "", apperr.FromDB(err, "webhook delivery")
	}
	jobID := uuid.NullUUID{UUID: job.ID, Valid: true}
	if !created {
		return ActionJobExists, jobID, "", nil
	}
	return ActionJobCreated, jobID, "", nil
}

func jobPtr(id uuid.NullUUID) *uuid.UUID {
	if !id.Valid {
		return nil
	}
	return &id.UUID
}
