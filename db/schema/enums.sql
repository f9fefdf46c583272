-- The enum types of supabase/migrations, declared plainly for sqlc.
-- The migrations create them inside guarded do-blocks (so a second apply is
-- a no-op), which sqlc does not read. internal/migrate's tests fail if
-- these labels and the migrated database's ever differ.
create type public.job_status as enum ('queued', 'processing', 'done', 'failed', 'canceled');
create type public.job_source_type as enum ('youtube', 'upload');
