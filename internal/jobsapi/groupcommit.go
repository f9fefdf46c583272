package jobsapi

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/clipper/clipper/internal/events"
	"github.com/clipper/clipper/internal/jobs"
)

// createJob creates through the group commit when the daemon runs one.
func (a *api) createJob(ctx context.Context, p jobs.CreateParams) (jobs.Job, bool, error) {
	if a.Creates != nil {
		return a.Creates.Create(ctx, p)
	}
	return a.jobs.Create(ctx, p)
}

// addEvent appends through the group commit when the daemon runs one.
func (a *api) addEvent(ctx context.Context, jobID uuid.UUID, typ string, data json.RawMessage) (events.Event, error) {
	if a.Appends != nil {
		return a.Appends.Append(ctx, jobID, typ, data)
	}
	return a.events.Append(ctx, jobID, typ, data)
}
