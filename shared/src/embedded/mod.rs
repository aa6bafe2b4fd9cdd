//! Embedded adapters: one SQLite database for the table, its change stream
//! and the queues; a folder for blobs.
