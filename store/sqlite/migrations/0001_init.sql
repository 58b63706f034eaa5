-- Hush delivery-service schema, SQLite dialect. Keep in step with
-- store/postgres/migrations: the queries in store/internal/sqlstore run on
-- both. Times are Unix microseconds (UTC).

CREATE TABLE users (
	id           BLOB PRIMARY KEY,
	username     TEXT NOT NULL UNIQUE,   -- canonical (lower-case) form
	identity_key BLOB NOT NULL,
	created_at   INTEGER NOT NULL
);

CREATE TABLE devices (
	id         BLOB PRIMARY KEY,
	user_id    BLOB NOT NULL REFERENCES users (id),
	auth_hash  BLOB NOT NULL,
	credential BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL,
	revoked    BOOLEAN NOT NULL DEFAULT FALSE,
	inbox_seq  INTEGER NOT NULL DEFAULT 0   -- last seq of the direct inbox
);
CREATE INDEX devices_user ON devices (user_id, created_at);

CREATE TABLE key_packages (
	id          INTEGER PRIMARY KEY,        -- upload order
	device_id   BLOB NOT NULL REFERENCES devices (id),
	ref         BLOB NOT NULL UNIQUE,
	data        BLOB NOT NULL,
	last_resort BOOLEAN NOT NULL
);
CREATE INDEX key_packages_device ON key_packages (device_id, last_resort, id);
CREATE UNIQUE INDEX key_packages_one_last_resort ON key_packages (device_id) WHERE last_resort;

CREATE TABLE groups (
	id         BLOB PRIMARY KEY,
	epoch      INTEGER NOT NULL,
	last_seq   INTEGER NOT NULL,
	created_at INTEGER NOT NULL
);

-- The roster, with each member's delivery cursor.
CREATE TABLE members (
	group_id  BLOB NOT NULL REFERENCES groups (id),
	device_id BLOB NOT NULL REFERENCES devices (id),
	acked     INTEGER NOT NULL,
	PRIMARY KEY (group_id, device_id)
) WITHOUT ROWID;
CREATE INDEX members_device ON members (device_id, group_id, acked);

CREATE TABLE messages (
	id            INTEGER PRIMARY KEY,
	group_id      BLOB NOT NULL REFERENCES groups (id),
	seq           INTEGER NOT NULL,
	sender        BLOB NOT NULL,
	client_msg_id TEXT NOT NULL,
	kind          INTEGER NOT NULL,
	epoch         INTEGER NOT NULL,
	payload       BLOB NOT NULL,
	sent_at       INTEGER NOT NULL,
	expires_at    INTEGER,
	UNIQUE (group_id, seq),
	UNIQUE (sender, client_msg_id)
);
-- Ack deletes delivered disappearing messages through this index. Purge
-- scans whole tables, so no index serves it: each would slow every append.
CREATE INDEX messages_disappearing ON messages (group_id, seq) WHERE expires_at IS NOT NULL;

CREATE TABLE direct (
	id            INTEGER PRIMARY KEY,
	device_id     BLOB NOT NULL REFERENCES devices (id),
	seq           INTEGER NOT NULL,
	sender        BLOB NOT NULL,
	client_msg_id TEXT NOT NULL,
	group_id      BLOB,
	kind          INTEGER NOT NULL,
	payload       BLOB NOT NULL,
	sent_at       INTEGER NOT NULL,
	expires_at    INTEGER,
	UNIQUE (device_id, seq),
	UNIQUE (device_id, sender, client_msg_id)
);

CREATE TABLE blobs (
	id         BLOB PRIMARY KEY,
	uploader   BLOB NOT NULL,
	size       INTEGER NOT NULL,
	digest     BLOB,
	created_at INTEGER NOT NULL,
	expires_at INTEGER
);
