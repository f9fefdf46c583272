-- name: GetJob :one
-- Primary key lookup.
select * from jobs where id = $1;
