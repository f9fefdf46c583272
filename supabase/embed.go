// Package supabase embeds the project's Supabase folder: the migrations
// (dbmate format, also applied by the Supabase CLI) and the seed.
package supabase

import "embed"

// Migrations holds migrations/*.sql, in the form both dbmate and
// `supabase db push` apply.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Seed is the minimal development data (supabase/seed.sql).
//
//go:embed seed.sql
var Seed string
