// Package db holds the SQL the data layer runs: queries/ (compiled into
// internal/dbgen by sqlc) and the tests that check those queries' plans
// on realistic volumes.
package db
