-- migrate:up
-- A status event names the worker of the attempt it ends. A retry or a
-- heartbeat timeout sends a job from processing back to queued and clears
-- its worker_id, so the event took the worker from the new row and lost
-- it; it now falls back to the old row's.

create or replace function clipper_internal.jobs_write_events() returns trigger
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    insert into public.job_events (job_id, type, data)
    values (new.id, 'status', jsonb_build_object('to', new.status));
    return null;
  end if;
  if new.status is distinct from old.status then
    insert into public.job_events (job_id, type, data)
    values (new.id, 'status', jsonb_strip_nulls(jsonb_build_object(
      'from', old.status,
      'to', new.status,
      'attempt', new.attempts,
      'worker_id', coalesce(new.worker_id, old.worker_id),
      'error_code', new.error_code,
      'error_message', new.error_message,
      'result_keys', case when new.status = 'done' then to_jsonb(new.result_keys) end)));
  end if;
  if new.progress is distinct from old.progress and new.status = old.status then
    insert into public.job_events (job_id, type, data)
    values (new.id, 'progress', jsonb_build_object('progress', new.progress));
  end if;
  return null;
end
$$;

-- migrate:down
