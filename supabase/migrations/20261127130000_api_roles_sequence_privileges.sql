-- migrate:up
-- Supabase's default privileges give anon and authenticated every
-- privilege on each new sequence in public, and 20261127000400 revoked only
-- the tables': either role could setval() job_events' identity to its
-- maximum (sequence changes survive a rollback) and make every later
-- event insert fail, and with it every status change, whose event the
-- jobs trigger writes. Inserting into an identity column needs no
-- sequence privilege, so the API roles need none; service_role keeps its
-- own.

revoke all on all sequences in schema public from anon, authenticated;

-- migrate:down
