// Typical frontend reads through PostgREST with a typed supabase-js client.
// Compiled (never run) by `tsc --noEmit`: a column or enum value that moves
// in the migrations breaks this file, and so does any query in rejected()
// that starts to type-check.

import { createClient } from "@supabase/supabase-js";
import type { Database, Enums, Json, Tables, TablesInsert } from "../generated/database.types";
import type { Equal, Expect } from "./expect";

const supabase = createClient<Database>("http://localhost:54321", "public-anon-key");

type JobStatus = Enums<"job_status">;

// The signed-in user's jobs with one status, newest first, keyset-paginated
// on (created_at, id) as the index jobs_owner_created_at_idx is laid out.
export async function listMyJobs(userId: string, status: JobStatus, before?: { createdAt: string; id: string }) {
  let query = supabase
    .from("jobs")
    .select("id, status, progress, source_type, source_url, result_keys, error_code, error_message, created_at, finished_at")
    .eq("owner_id", userId)
    .eq("status", status)
    .order("created_at", { ascending: false })
    .order("id", { ascending: false })
    .limit(50);
  if (before) {
    query = query.or(`created_at.lt.${before.createdAt},and(created_at.eq.${before.createdAt},id.lt.${before.id})`);
  }
  const { data, error } = await query;
  if (error) throw error;

  type Row = (typeof data)[number];
  type _row = Expect<
    Equal<
      Row,
      {
        id: string;
        status: JobStatus;
        progress: number;
        source_type: "youtube" | "upload";
        source_url: string | null;
        result_keys: string[];
        error_code: string | null;
        error_message: string | null;
        created_at: string;
        finished_at: string | null;
      }
    >
  >;
  return data;
}

// One job with its events in time order, as a job page shows it.
export async function jobWithEvents(jobId: string) {
  const { data, error } = await supabase
    .from("jobs")
    .select("id, status, progress, params, result_keys, job_events(id, ts, type, data)")
    .eq("id", jobId)
    .order("ts", { referencedTable: "job_events", ascending: true })
    .order("id", { referencedTable: "job_events", ascending: true })
    .single();
  if (error) throw error;

  type _job = Expect<
    Equal<
      typeof data,
      {
        id: string;
        status: JobStatus;
        progress: number;
        params: NonNullable<Json>;
        result_keys: string[];
        job_events: { id: number; ts: string; type: string; data: NonNullable<Json> }[];
      }
    >
  >;
  const done: boolean = data.status === "done";
  const last = data.job_events.at(-1);
  return { done, lastEvent: last?.type, keys: data.result_keys };
}

// The events of one job after a known one, e.g. to catch up after a
// realtime reconnect.
export async function eventsSince(jobId: string, afterTs: string) {
  const { data, error } = await supabase
    .from("job_events")
    .select("*")
    .eq("job_id", jobId)
    .gt("ts", afterTs)
    .order("ts")
    .order("id");
  if (error) throw error;
  type _events = Expect<Equal<typeof data, Tables<"job_events">[]>>;
  return data;
}

// Create a job (the columns the authenticated role may insert) and cancel it.
export async function createAndCancel(url: string) {
  const job: TablesInsert<"jobs"> = {
    source_type: "youtube",
    source_url: url,
    params: { start: 12.5, end: 30, format: "mp4" },
    idempotency_key: "clip-1",
  };
  const { data, error } = await supabase.from("jobs").insert(job).select("id, status").single();
  if (error) throw error;
  type _created = Expect<Equal<typeof data, { id: string; status: JobStatus }>>;

  const { error: cancelError } = await supabase.from("jobs").update({ status: "canceled" }).eq("id", data.id);
  if (cancelError) throw cancelError;
  return data.id;
}

// Queries that must not type-check. If one of them starts to compile (the
// schema or the generator moved), the unused @ts-expect-error fails the build.
export async function rejected(jobId: string) {
  // A status outside the job_status enum.
  // @ts-expect-error "running" is not a job_status
  await supabase.from("jobs").select("id").eq("status", "running");

  // @ts-expect-error "running" is not a job_status
  await supabase.from("jobs").update({ status: "running" }).eq("id", jobId);

  // A column that does not exist: the select parses to an error type, so
  // reading the row fails.
  const { data } = await supabase.from("jobs").select("id, state").eq("id", jobId).single();
  // @ts-expect-error jobs has no column state
  const state: string = data!.state;

  // @ts-expect-error jobs has no column state
  await supabase.from("jobs").select("id").eq("state", "done");

  // @ts-expect-error jobs has no column state
  await supabase.from("jobs").update({ state: "done" }).eq("id", jobId);

  // @ts-expect-error progress is a number
  await supabase.from("jobs").select("id").eq("progress", "50%");

  // @ts-expect-error source_type is required on insert
  await supabase.from("jobs").insert({ source_url: "https://youtu.be/x" });

  // @ts-expect-error job_events.id is generated always
  await supabase.from("job_events").insert({ id: 1, job_id: jobId, type: "status" });

  // @ts-expect-error no table jobz
  await supabase.from("jobz").select("*");

  return state;
}

// A signed-in user's upload, clipped: the source goes into the user's own
// folder of the sources bucket (the only place the storage policy and the
// jobs constraint jobs_source_object_folder_check allow), then its job.
export async function uploadAndClip(userId: string, file: Blob, name: string) {
  const path = `${userId}/${name}`;
  const { error: uploadError } = await supabase.storage.from("sources").upload(path, file, { contentType: file.type });
  if (uploadError) throw uploadError;
  const { data, error } = await supabase
    .from("jobs")
    .insert({ source_type: "upload", source_object: path, params: { start: 1, end: 5 } })
    .select("id")
    .single();
  if (error) throw error;
  return data.id;
}

// Signed download URLs of a done job's results, made by supabase-js with
// the user's own token: the results read policy lets an owner read the
// result objects of their own jobs, which live under `<job id>/`.
export async function resultURLs(job: { id: string; result_keys: string[] }) {
  const { data, error } = await supabase.storage.from("results").createSignedUrls(job.result_keys, 60);
  if (error) throw error;
  return data.map((d) => d.signedUrl);
}
