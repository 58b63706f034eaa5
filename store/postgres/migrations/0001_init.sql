-- Hush delivery-service schema, PostgreSQL dialect. Keep in step with
-- store/sqlite/migrations: the queries in store/internal/sqlstore run on
-- both. Times are Unix microseconds (UTC).

CREATE TABLE users (
	id           BYTEA PRIMARY KEY,
	username     TEXT NOT NULL UNIQUE,   -- canonical (lower-case) form
	identity_key BYTEA NOT NULL,
	created_at   BIGINT NOT NULL
);

CREATE TABLE devices (
	id         BYTEA PRIMARY KEY,
	user_id    BYTEA NOT NULL REFERENCES users (id),
	auth_hash  BYTEA NOT NULL,
	credential BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	last_seen  BIGINT NOT NULL,
	revoked    BOOLEAN NOT NULL DEFAULT FALSE,
	inbox_seq  BIGINT NOT NULL DEFAULT 0   -- last seq of the direct inbox
);
CREATE INDEX devices_user ON devices (user_id, created_at);

CREATE TABLE key_packages (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- upload order
	device_id   BYTEA NOT NULL REFERENCES devices (id),
	ref         BYTEA NOT NULL UNIQUE,
	data        BYTEA NOT NULL,
	last_resort BOOLEAN NOT NULL
);
CREATE INDEX key_packages_device ON key_packages (device_id, last_resort, id);
CREATE UNIQUE INDEX key_packages_one_last_resort ON key_packages (device_id) WHERE last_resort;

CREATE TABLE groups (
	id         BYTEA PRIMARY KEY,
	epoch      BIGINT NOT NULL,
	last_seq   BIGINT NOT NULL,
	created_at BIGINT NOT NULL
);

-- The roster, with each member's delivery cursor.
CREATE TABLE members (
	group_id  BYTEA NOT NULL REFERENCES groups (id),
	device_id BYTEA NOT NULL REFERENCES devices (id),
	acked     BIGINT NOT NULL,
	PRIMARY KEY (group_id, device_id)
);
CREATE INDEX members_device ON members (device_id, group_id, acked);

CREATE TABLE messages (
	id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	group_id      BYTEA NOT NULL REFERENCES groups (id),
	seq           BIGINT NOT NULL,
	sender        BYTEA NOT NULL,
	client_msg_id TEXT NOT NULL,
	kind          INTEGER NOT NULL,
	epoch         BIGINT NOT NULL,
	payload       BYTEA NOT NULL,
	sent_at       BIGINT NOT NULL,
	expires_at    BIGINT,
	UNIQUE (group_id, seq),
	UNIQUE (sender, client_msg_id)
);
-- Ack deletes delivered disappearing messages through this index. Purge
-- scans whole tables, so no index serves it: each would slow every append.
CREATE INDEX messages_disappearing ON messages (group_id, seq) WHERE expires_at IS NOT NULL;

CREATE TABLE direct (
	id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	device_id     BYTEA NOT NULL REFERENCES devices (id),
	seq           BIGINT NOT NULL,
	sender        BYTEA NOT NULL,
	client_msg_id TEXT NOT NULL,
	group_id      BYTEA,
	kind          INTEGER NOT NULL,
	payload       BYTEA NOT NULL,
	sent_at       BIGINT NOT NULL,
	expires_at    BIGINT,
	UNIQUE (device_id, seq),
	UNIQUE (device_id, sender, client_msg_id)
);

CREATE TABLE blobs (
	id         BYTEA PRIMARY KEY,
	uploader   BYTEA NOT NULL,
	size       BIGINT NOT NULL,
	digest     BYTEA,
	created_at BIGINT NOT NULL,
	expires_at BIGINT
);
