-- Minimal development data: one demo user with a job in each status and
-- the events its transitions wrote. Safe to run again: fixed ids, guarded
-- transitions. The demo API key is made by `clipper seed` (its plaintext is
-- printed once and never stored), not here.

-- The demo user can sign in with Supabase Auth (`supabase start`, then
-- signInWithPassword): email demo@clipper.local, password
-- clipper-demo-password (a development password, printed below and by
-- `clipper seed`; never seed it into a real project). The rows are what
-- GoTrue writes for an email sign-up (supabase/auth internal/models/user.go
-- and identity.go): a bcrypt hash in encrypted_password (pgcrypto's
-- crypt(..., gen_salt('bf')); GoTrue verifies it with bcrypt), the email
-- confirmed, '' rather than null in the token columns GoTrue reads as
-- strings, and an 'email' identity whose provider_id is the user id.
do $seed$
declare
  crypto text := (select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace
                  where e.extname = 'pgcrypto');
begin
  if crypto is null then
    raise exception 'seed: the pgcrypto extension is needed to hash the demo password (Supabase has it in extensions; clipper migrate installs it on plain Postgres)';
  end if;
  execute format($q$
    insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
      confirmation_token, recovery_token, email_change_token_new, email_change, email_change_token_current,
      phone_change, phone_change_token, reauthentication_token,
      raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values ('00000000-0000-0000-0000-000000000000', 'd0000000-0000-4000-8000-000000000001',
      'authenticated', 'authenticated', 'demo@clipper.local',
      %1$I.crypt('clipper-demo-password', %1$I.gen_salt('bf')), now(),
      '', '', '', '', '', '', '', '',
      '{"provider": "email", "providers": ["email"]}', '{"email_verified": true}', now(), now())
    on conflict (id) do nothing$q$, crypto);
  -- A demo user seeded before it could sign in: give it the same columns.
  execute format($q$
    update auth.users set instance_id = '00000000-0000-0000-0000-000000000000',
      aud = 'authenticated', role = 'authenticated',
      encrypted_password = %1$I.crypt('clipper-demo-password', %1$I.gen_salt('bf')),
      email_confirmed_at = coalesce(email_confirmed_at, now()),
      confirmation_token = '', recovery_token = '', email_change_token_new = '', email_change = '',
      email_change_token_current = '', phone_change = '', phone_change_token = '', reauthentication_token = '',
      raw_app_meta_data = coalesce(raw_app_meta_data, '{"provider": "email", "providers": ["email"]}'),
      raw_user_meta_data = coalesce(raw_user_meta_data, '{"email_verified": true}')
    where id = 'd0000000-0000-4000-8000-000000000001' and coalesce(encrypted_password, '') = ''$q$, crypto);
end
$seed$;

insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
values ('d0000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8000-000000000001',
  '{"sub": "d0000000-0000-4000-8000-000000000001", "email": "demo@clipper.local", "email_verified": true, "phone_verified": false}',
  'email', now(), now(), now())
on conflict (provider_id, provider) do nothing;

do $$
begin
  raise notice 'Demo sign-in (Supabase Auth): demo@clipper.local / clipper-demo-password';
end
$$;

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
