// A TypeScript service on the generated Drizzle schema (direct Postgres
// connection, no RLS: the service side). Compiled, never run, by
// `tsc --noEmit`, like supabase.ts.

import { and, asc, desc, eq, inArray, lt, or, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import * as relations from "../generated/drizzle/relations";
import * as schema from "../generated/drizzle/schema";
import { jobEvents, jobs, jobStatus } from "../generated/drizzle/schema";
import type { Equal, Expect } from "./expect";

const db = drizzle(process.env.DATABASE_URL!, { schema: { ...schema, ...relations } });

type JobStatus = (typeof jobStatus.enumValues)[number];
type _statuses = Expect<Equal<JobStatus, "queued" | "processing" | "done" | "failed" | "canceled">>;

// Recent jobs with one of some statuses, keyset-paginated on
// (created_at, id) as jobs_status_created_at_idx is laid out.
export async function recentJobs(statuses: JobStatus[], before?: { createdAt: string; id: string }) {
  const rows = await db
    .select({
      id: jobs.id,
      status: jobs.status,
      progress: jobs.progress,
      resultKeys: jobs.resultKeys,
      params: jobs.params,
      errorCode: jobs.errorCode,
      createdAt: jobs.createdAt,
    })
    .from(jobs)
    .where(
      and(
        inArray(jobs.status, statuses),
        before
          ? or(lt(jobs.createdAt, before.createdAt), and(eq(jobs.createdAt, before.createdAt), lt(jobs.id, before.id)))
          : undefined,
      ),
    )
    .orderBy(desc(jobs.createdAt), desc(jobs.id))
    .limit(50);

  type _row = Expect<
    Equal<
      (typeof rows)[number],
      {
        id: string;
        status: JobStatus;
        progress: number;
        resultKeys: string[];
        params: unknown;
        errorCode: string | null;
        createdAt: string;
      }
    >
  >;
  return rows;
}

// One job with its events in time order (relational query).
export async function jobWithEvents(jobId: string) {
  const job = await db.query.jobs.findFirst({
    columns: { id: true, status: true, progress: true, finishedAt: true },
    where: eq(jobs.id, jobId),
    with: { jobEvents: { orderBy: [asc(jobEvents.ts), asc(jobEvents.id)] } },
  });
  if (!job) return undefined;
  type _job = Expect<
    Equal<
      typeof job,
      {
        id: string;
        status: JobStatus;
        progress: number;
        finishedAt: string | null;
        jobEvents: { id: number; jobId: string; ts: string; type: string; data: unknown }[];
      }
    >
  >;
  return job;
}

// A full row and the insert shape, as the API creates a job.
export async function createJob(ownerId: string, url: string) {
  const values: typeof jobs.$inferInsert = {
    ownerId,
    sourceType: "youtube",
    sourceUrl: url,
    params: { start: 0, end: 15 },
  };
  const [row] = await db.insert(jobs).values(values).returning();
  type _row = Expect<Equal<typeof row, typeof jobs.$inferSelect | undefined>>;
  return row?.id;
}

// Events of one job, through SQL the schema types.
export async function eventCount(jobId: string) {
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(jobEvents)
    .where(eq(jobEvents.jobId, jobId));
  return row?.n ?? 0;
}

// Queries that must not type-check; an unused @ts-expect-error fails the build.
export async function rejected(jobId: string) {
  // @ts-expect-error jobs has no column state
  await db.select().from(jobs).where(eq(jobs.state, "done"));

  // @ts-expect-error "running" is not a job_status
  await db.select().from(jobs).where(eq(jobs.status, "running"));

  // @ts-expect-error "running" is not a job_status
  await db.update(jobs).set({ status: "running" }).where(eq(jobs.id, jobId));

  // @ts-expect-error sourceType is required on insert
  await db.insert(jobs).values({ sourceUrl: "https://youtu.be/x" });

  // @ts-expect-error progress is a number
  await db.update(jobs).set({ progress: "50%" }).where(eq(jobs.id, jobId));
}
