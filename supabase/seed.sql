-- Minimal development data: one demo user with a job in each status and
-- the events its transitions wrote. Safe to run again: fixed ids, guarded
-- transitions. The demo API key is made by `clipper seed` (its plaintext is
-- printed once and never stored), not here.

insert into auth.users (id, email)
values ('d0000000-0000-4000-8000-000000000001', 'demo@clipper.local')
on conflict (id) do nothing;

insert into public.jobs (id, owner_id, source_type, source_url, source_object, params, idempotency_key)
values
  ('d0000000-0000-4000-8000-00000000a001', 'd0000000-0000-4000-8000-000000000001', 'youtube',
   'https://www.youtube.com/watch?v=dQw4w9WgXcQ', null, '{"start": 10, "end": 25, "format": "mp4"}', 'seed-queued'),
  ('d0000000-0000-4000-8000-00000000a002', 'd0000000-0000-4000-8000-000000000001', 'youtube',
   'https://www.youtube.com/watch?v=9bZkp7q19f0', null, '{"start": 0, "end": 30, "format": "mp4"}', 'seed-processing'),
  ('d0000000-0000-4000-8000-00000000a003', 'd0000000-0000-4000-8000-000000000001', 'upload',
   null, 'd0000000-0000-4000-8000-000000000001/talk.mp4', '{"start": 60, "end": 90, "format": "webm"}', 'seed-done'),
  ('d0000000-0000-4000-8000-00000000a004', 'd0000000-0000-4000-8000-000000000001', 'youtube',
   'https://www.youtube.com/watch?v=aaaaaaaaaaa', null, '{"start": 5, "end": 6}', 'seed-failed'),
  ('d0000000-0000-4000-8000-00000000a005', 'd0000000-0000-4000-8000-000000000001', 'youtube',
   'https://www.youtube.com/watch?v=bbbbbbbbbbb', null, '{"start": 1, "end": 2}', 'seed-canceled')
on conflict do nothing;

-- Walk each job through its transitions; each update writes its event.
update public.jobs set status = 'processing', attempts = 1, worker_id = 'seed-worker',
  claimed_at = now(), last_heartbeat_at = now()
where id in ('d0000000-0000-4000-8000-00000000a002', 'd0000000-0000-4000-8000-00000000a003',
             'd0000000-0000-4000-8000-00000000a004')
  and status = 'queued';

-- A rerun finds the processing job as the reaper left it, or still held:
-- either way it is processing again, with a fresh heartbeat.
update public.jobs set last_heartbeat_at = now()
where id = 'd0000000-0000-4000-8000-00000000a002' and status = 'processing';

update public.jobs set progress = 40
where id = 'd0000000-0000-4000-8000-00000000a002' and status = 'processing' and progress = 0;

update public.jobs set progress = 100
where id = 'd0000000-0000-4000-8000-00000000a003' and status = 'processing' and progress = 0;

update public.jobs set status = 'done', result_keys = array['d0000000-0000-4000-8000-00000000a003/clip.webm'],
  expires_at = now() + interval '7 days'
where id = 'd0000000-0000-4000-8000-00000000a003' and status = 'processing';

update public.jobs set status = 'failed', error_code = 'source_unavailable',
  error_message = 'the video is private or was removed', expires_at = now() + interval '7 days'
where id = 'd0000000-0000-4000-8000-00000000a004' and status = 'processing';

update public.jobs set status = 'canceled', expires_at = now() + interval '7 days'
where id = 'd0000000-0000-4000-8000-00000000a005' and status = 'queued';
