// A signed-in frontend follows its jobs live, without polling and without
// an API key: the database sends a Broadcast message on the private topic
// `clipper:jobs:<user id>` each time a job of the user changes (migration
// 20261202140000_realtime_job_broadcast.sql), and only that user may join
// the topic (an RLS policy on realtime.messages). Compiled (never run) by
// `tsc --noEmit`, like the other checks.

import { createClient, type RealtimeChannel } from "@supabase/supabase-js";
import type { Database, Enums } from "../generated/database.types";
import type { Equal, Expect } from "./expect";

const supabase = createClient<Database>("http://localhost:54321", "public-anon-key");

// What the trigger sends (jsonb_build_object in the migration), plus the
// message id realtime.send() adds.
export type JobBroadcast = {
  id: string;
  job_id: string;
  event_id: number;
  status: Enums<"job_status">;
  progress: number;
};

// The payload fields are the jobs columns of the same names.
type _status = Expect<Equal<JobBroadcast["status"], Database["public"]["Tables"]["jobs"]["Row"]["status"]>>;
type _progress = Expect<Equal<JobBroadcast["progress"], Database["public"]["Tables"]["jobs"]["Row"]["progress"]>>;
type _job = Expect<Equal<JobBroadcast["job_id"], Database["public"]["Tables"]["jobs"]["Row"]["id"]>>;
type _event = Expect<Equal<JobBroadcast["event_id"], Database["public"]["Tables"]["job_events"]["Row"]["id"]>>;

export function jobsTopic(userId: string): string {
  return `clipper:jobs:${userId}`;
}

// Subscribe after sign-in; call the returned function to stop.
export async function followMyJobs(
  onChange: (change: JobBroadcast) => void,
  onError: (err: Error) => void,
): Promise<() => Promise<void>> {
  const {
    data: { user },
  } = await supabase.auth.getUser();
  if (!user) throw new Error("sign in first");
  // Private channels are authorized with the user's JWT.
  await supabase.realtime.setAuth();
  const channel: RealtimeChannel = supabase
    .channel(jobsTopic(user.id), { config: { private: true } })
    .on<JobBroadcast>("broadcast", { event: "job" }, ({ payload }) => {
      type _payload = Expect<Equal<typeof payload, JobBroadcast>>;
      onChange(payload);
    })
    .subscribe((status, err) => {
      // CHANNEL_ERROR: not allowed to join (not signed in, or another
      // user's topic), or Realtime unreachable.
      if (status === "CHANNEL_ERROR" || status === "TIMED_OUT") onError(err ?? new Error(status));
    });
  return async () => {
    await supabase.removeChannel(channel);
  };
}

// A job page: keep one job's status and progress current.
export async function watchJob(jobId: string, render: (status: Enums<"job_status">, progress: number) => void) {
  const { data, error } = await supabase.from("jobs").select("status, progress").eq("id", jobId).single();
  if (error) throw error;
  render(data.status, data.progress);
  return followMyJobs(
    (change) => {
      if (change.job_id === jobId) render(change.status, change.progress);
    },
    (err) => console.error(err),
  );
}

function rejected() {
  // @ts-expect-error status is the job_status enum: a value the database never sends does not type-check
  const bad: JobBroadcast["status"] = "running";
  return bad;
}
void rejected;
