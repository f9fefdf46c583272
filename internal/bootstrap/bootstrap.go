// Package bootstrap gives a plain PostgreSQL the parts of a Supabase
// database that the migrations expect (API roles, auth.uid(), storage
// tables), and leaves a real Supabase database untouched. Each piece is
// created only where it is missing, so a database with some of Supabase's
// schemas keeps them as they are.
package bootstrap

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/jackc/pgx/v5"
)

//go:embed plain_postgres.sql
var plainPostgresSQL string

//go:embed realtime.sql
var realtimeSQL string

// missingQuery reports whether any piece the bootstrap provides is absent.
const missingQuery = `
select not (
  exists (select 1 from pg_roles where rolname = 'anon')
  and exists (select 1 from pg_roles where rolname = 'authenticated')
  and exists (select 1 from pg_roles where rolname = 'service_role')
  and to_regprocedure('auth.uid()') is not null
  and to_regprocedure('auth.jwt()') is not null
  and to_regprocedure('auth.role()') is not null
  and to_regclass('auth.users') is not null
  and to_regclass('auth.identities') is not null
  and to_regclass('storage.buckets') is not null
  and to_regclass('storage.objects') is not null
  and to_regprocedure('storage.foldername(text)') is not null
)`

// Needed reports whether the database lacks Supabase's base objects, as a
// plain PostgreSQL does.
func Needed(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var missing bool
	if err := conn.QueryRow(ctx, missingQuery).Scan(&missing); err != nil {
		return false, fmt.Errorf("bootstrap: inspect database: %w", err)
	}
	return missing, nil
}

// Apply creates what is missing. It returns false, doing nothing, on a
// database that already has everything (Supabase itself).
func Apply(ctx context.Context, conn *pgx.Conn) (bool, error) {
	needed, err := Needed(ctx, conn)
	if err != nil || !needed {
		return false, err
	}
	// Simple protocol: the script holds several statements and do-blocks.
	if _, err := conn.Exec(ctx, plainPostgresSQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return false, fmt.Errorf("bootstrap: apply plain-postgres base: %w", err)
	}
	return true, nil
}

// ApplyRealtime adds Supabase Realtime's objects for Broadcast from the
// database (realtime.messages with today's partitions, realtime.topic(),
// realtime.send()), copied from Realtime's own migrations, where missing.
// Apply it before the migrations, as Supabase runs Realtime's migrations
// before a project's: the migrations then install the broadcast. Plain
// Postgres has no Realtime server, so clipper migrate never applies it.
func ApplyRealtime(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, realtimeSQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("bootstrap: apply realtime objects: %w", err)
	}
	return nil
}

// SQL returns the bootstrap script (tests key their templates on it).
func SQL() string { return plainPostgresSQL }
