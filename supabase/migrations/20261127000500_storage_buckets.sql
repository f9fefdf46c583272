-- migrate:up
-- Private buckets: sources (uploads to clip) and results (clips, reached
-- only through signed URLs). A user may upload and read sources only under
-- sources/<their uid>/; results have no policy for the API roles.

insert into storage.buckets (id, name, public)
values ('sources', 'sources', false), ('results', 'results', false)
on conflict (id) do nothing;

do $$
begin
  if not exists (select 1 from pg_policies where schemaname = 'storage' and tablename = 'objects'
                 and policyname = 'clipper_sources_insert_own') then
    create policy clipper_sources_insert_own on storage.objects for insert to authenticated
      with check (bucket_id = 'sources'
                  and (storage.foldername(name))[1] = (select auth.uid())::text);
  end if;
  if not exists (select 1 from pg_policies where schemaname = 'storage' and tablename = 'objects'
                 and policyname = 'clipper_sources_select_own') then
    create policy clipper_sources_select_own on storage.objects for select to authenticated
      using (bucket_id = 'sources'
             and (storage.foldername(name))[1] = (select auth.uid())::text);
  end if;
end
$$;

-- migrate:down
