package bench

import (
	"context"
	"fmt"
	"time"
)

// load brings the database to the configured volume inside the server
// (generate_series), the way a long-lived production database looks:
// statuses mixed (mostly done), 30 days of creation times, 1000 owners,
// every finished job expiring one retention after it finished (one
// CLIPPER_JOB_RETENTION for all, sized so that about a tenth of them have
// already expired), events spread over jobs. Rows are written in time
// order, as production appends them: jobs by creation, events by their
// job's creation and then their own time, so a job's events share pages
// with the events of jobs created (and so expiring) about when it was.
// Triggers are skipped for the bulk rows (session_replication_role)
// because the events are written explicitly; then ANALYZE and VACUUM.
func (e *env) load(ctx context.Context) error {
	var have int
	if err := e.pool.QueryRow(ctx, "select count(*) from jobs").Scan(&have); err != nil {
		return err
	}
	jobsToAdd := max(e.opts.Jobs-have, 0)
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "set session_replication_role = replica"); err != nil {
		return fmt.Errorf("bulk load needs a superuser (session_replication_role): %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "reset session_replication_role") //nolint:errcheck

	owners := `insert into auth.users (id, email)
		select ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'bench' || g || '@clipper.local'
		from generate_series(1, 1000) g on conflict do nothing`
	if _, err := conn.Exec(ctx, owners); err != nil {
		return err
	}
	const chunk = 200_000
	start := time.Now()
	for done := 0; done < jobsToAdd; done += chunk {
		n := min(chunk, jobsToAdd-done)
		_, err := conn.Exec(ctx, `
			insert into jobs (id, owner_id, source_type, source_url, params, status, attempts, worker_id,
			  claimed_at, last_heartbeat_at, started_at, finished_at, progress, result_keys,
			  error_code, error_message, created_at, updated_at, expires_at)
			select jid, ('00000000-0000-4000-8000-' || lpad(to_hex(1 + (g % 1000)), 12, '0'))::uuid,
			  'youtube', 'https://www.youtube.com/watch?v=load' || g, '{"start": 1, "end": 30}',
			  s.status, case when s.status = 'queued' then 0 else 1 end,
			  case when s.status in ('queued') then null else 'w' || (g % 50) end,
			  case when s.status = 'queued' then null else c.created + interval '1 second' end,
			  case when s.status = 'queued' then null else c.created + interval '20 seconds' end,
			  case when s.status = 'queued' then null else c.created + interval '1 second' end,
			  case when s.status in ('done', 'failed', 'canceled') then c.created + interval '30 seconds' end,
			  case when s.status = 'done' then 100 else 0 end,
			  case when s.status = 'done' then array[jid || '/clip.mp4'] else '{}' end,
			  case when s.status = 'failed' then 'transcode_failed' end,
			  case when s.status = 'failed' then 'ffmpeg exited with status 1' end,
			  c.created, c.created,
			  case when s.status in ('done', 'failed', 'canceled')
			       then c.created + interval '30 seconds' + interval '27 days' end
			-- offset 0 keeps the id one value per row for both columns
			-- (results live under their job's prefix).
			from (select g, clipper_internal.uuid_v7() from generate_series($1::bigint, $2::bigint) g offset 0) x(g, jid)
			cross join lateral (select now() - interval '30 days' * (($3::bigint - g)::float8 / $3::bigint) as created) c
			cross join lateral (select case
			    when g % 100 < 70 then 'done'::job_status
			    when g % 100 < 80 then 'failed'::job_status
			    when g % 100 < 90 then 'queued'::job_status
			    when g % 100 < 95 then 'processing'::job_status
			    else 'canceled'::job_status end as status) s`, done, done+n-1, jobsToAdd)
		if err != nil {
			return err
		}
		e.logf("  jobs: %d/%d (%.0f rows/s)", done+n, jobsToAdd, float64(done+n)/time.Since(start).Seconds())
	}

	// Events: perJob for every job, in chunks by job, in time order.
	var haveEvents int
	if err := conn.QueryRow(ctx, "select count(*) from job_events").Scan(&haveEvents); err != nil {
		return err
	}
	eventsToAdd := max(e.opts.Events-haveEvents, 0)
	if eventsToAdd > 0 {
		perJob := max(eventsToAdd/max(e.opts.Jobs, 1), 1)
		start = time.Now()
		if _, err := conn.Exec(ctx, "create temporary table bench_job_ids as select id, created_at, row_number() over (order by created_at, id) as n from jobs"); err != nil {
			return err
		}
		var total int
		if err := conn.QueryRow(ctx, "select count(*) from bench_job_ids").Scan(&total); err != nil {
			return err
		}
		jobsPerChunk := max(1_000_000/perJob, 1)
		added := 0
		for lo := 1; lo <= total && added < eventsToAdd; lo += jobsPerChunk {
			hi := lo + jobsPerChunk - 1
			tag, err := conn.Exec(ctx, `
				insert into job_events (job_id, ts, type, data)
				select j.id, j.created_at + k * interval '1 second',
				  case when k = 1 then 'status' when k % 5 = 0 then 'progress' else 'log' end,
				  case when k = 1 then '{"to": "queued"}'::jsonb
				       when k % 5 = 0 then jsonb_build_object('progress', least(k * 10, 100))
				       else jsonb_build_object('stage', 'transcode', 'frame', k * 300) end
				from bench_job_ids j cross join generate_series(1, $3::int) k
				where j.n between $1 and $2
				order by j.n, k`, lo, hi, perJob)
			if err != nil {
				return err
			}
			added += int(tag.RowsAffected())
			e.logf("  events: %d/%d (%.0f rows/s)", added, eventsToAdd, float64(added)/time.Since(start).Seconds())
		}
		if _, err := conn.Exec(ctx, "drop table bench_job_ids"); err != nil {
			return err
		}
	}
	start = time.Now()
	if _, err := conn.Exec(ctx, "vacuum analyze jobs, job_events"); err != nil {
		return err
	}
	e.logf("  vacuum analyze in %s", time.Since(start).Round(time.Millisecond))
	return nil
}
