-- migrate:up
-- Size and type limits on the two buckets, enforced by Supabase Storage on
-- every upload (src/storage/uploader.ts: file_size_limit in bytes;
-- allowed_mime_types matched against the upload's Content-Type, where
-- 'video/*' admits any video subtype). Defaults:
--   sources  5 GiB   video/*, audio/*            (what users upload to clip)
--   results  1 GiB   video/*, audio/*, image/*   (clips, audio, thumbnails/GIFs)
-- A project's global limit (Storage settings; 50 MB on the free plan, and
-- storage.file_size_limit in supabase/config.toml) still applies on top.
--
-- Settable at migration time with custom settings, e.g.
--   PGOPTIONS='-c clipper.sources_file_size_limit=2147483648 -c clipper.results_allowed_mime_types=video/mp4,video/webm' clipper migrate
-- (or "options=-c clipper...." in the DSN given to `supabase db push
-- --db-url`, or `alter database postgres set clipper.... = '...'` first).
-- Names: clipper.<bucket>_file_size_limit (bytes) and
-- clipper.<bucket>_allowed_mime_types (comma-separated). A setting given is
-- applied, also over an earlier value; without one, the default fills in
-- only a limit that is not set, so replaying this file never undoes a
-- limit changed later in the dashboard or with
--   update storage.buckets set file_size_limit = ... where id = 'sources';
-- Existing buckets are updated in place; nothing changes when the values
-- are already there.

do $$
declare
  b record;
  size_setting text;
  types_setting text;
  new_size bigint;
  new_types text[];
begin
  for b in select * from (values
      ('sources', 5368709120::bigint, array['video/*', 'audio/*']),
      ('results', 1073741824::bigint, array['video/*', 'audio/*', 'image/*'])) v(id, size, types)
  loop
    new_types := null;
    size_setting := nullif(trim(current_setting('clipper.' || b.id || '_file_size_limit', true)), '');
    types_setting := nullif(trim(current_setting('clipper.' || b.id || '_allowed_mime_types', true)), '');
    if size_setting is not null and size_setting !~ '^[1-9][0-9]{0,18}$' then
      raise exception 'clipper.%_file_size_limit must be a positive number of bytes, got %', b.id, size_setting
        using errcode = '22023';
    end if;
    if types_setting is not null then
      select array_agg(trim(t)) into new_types from unnest(string_to_array(types_setting, ',')) t where trim(t) <> '';
      if new_types is null or exists (select 1 from unnest(new_types) t where t !~ '^[a-z0-9.+-]+/([a-z0-9.+-]+|\*)$') then
        raise exception 'clipper.%_allowed_mime_types must be a comma-separated list of type/subtype or type/*, got %',
          b.id, types_setting using errcode = '22023';
      end if;
    end if;
    new_size := coalesce(size_setting::bigint, b.size);
    new_types := coalesce(new_types, b.types);

    update storage.buckets set file_size_limit = new_size
    where id = b.id
      and (size_setting is not null or file_size_limit is null)
      and file_size_limit is distinct from new_size;
    update storage.buckets set allowed_mime_types = new_types
    where id = b.id
      and (types_setting is not null or allowed_mime_types is null)
      and allowed_mime_types is distinct from new_types;
  end loop;
end
$$;

-- migrate:down
