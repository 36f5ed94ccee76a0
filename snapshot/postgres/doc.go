// Package postgres backs up a PostgreSQL database as one consistent snapshot and restores it:
// a coordinator transaction exports its snapshot, workers import it and stream COPY of every
// table into the repository, and pg_dump writes the pre-data and post-data DDL from the same
// snapshot. Restores replay pre-data, load the tables in parallel, then build post-data.
package postgres
