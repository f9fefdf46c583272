// drizzle-kit configuration for `drizzle-kit pull`, run by `make types`
// (internal/tools/typesgen) against a throwaway database migrated from
// supabase/migrations. The SQL migrations are the schema's only source:
// never point `drizzle-kit push`, `generate` or `migrate` at this config.
import { defineConfig } from "drizzle-kit";

const url = process.env.DRIZZLE_DATABASE_URL;
const out = process.env.DRIZZLE_OUT;
if (!url || !out) {
  throw new Error("DRIZZLE_DATABASE_URL and DRIZZLE_OUT must be set (run make types)");
}

export default defineConfig({
  dialect: "postgresql",
  dbCredentials: { url },
  // public holds the clipper's tables; auth is included so that the
  // foreign keys to auth.users resolve to a declared table.
  schemaFilter: ["public", "auth"],
  out,
});
